"""A 300-VW-layout driver clip made from a face (reenactment and the renderer comparison recipe)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_pts(path: Path, points: np.ndarray) -> None:
    """300W .pts, 1-based on disk (independent of gannotate.io)."""
    lines = ["version: 1", f"n_points: {len(points)}", "{"] + [f"{x + 1:.3f} {y + 1:.3f}" for x, y in points] + ["}"]
    path.write_text("\n".join(lines) + "\n")


def make_driver_clip(root: Path, face, n_frames: int, size: int = 160) -> Path:
    """A 300-VW-layout clip: ``vid.mp4`` of ``n_frames`` frames + ``annot/00000k.pts``, the face moving slightly.

    Frames are the face's crop shifted by a few pixels per frame; the landmarks follow the shift and
    open the mouth a little (points 48–67 move apart vertically), so pose and expression both vary.
    """
    from gannotate.geometry import crop_face

    c = crop_face(face.image, face.points, size=size, margin=40)
    clip = root / "clip"
    (clip / "annot").mkdir(parents=True)
    writer = cv2.VideoWriter(str(clip / "vid.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size, size))
    assert writer.isOpened()
    mouth = np.zeros_like(c.points)
    centre = c.points[48:68, 1].mean()
    for t in range(n_frames):
        dx, dy = t, (t % 2)
        frame = np.roll(np.roll(c.image, dy, 0), dx, 1)
        mouth[48:68, 1] = 0.15 * t * np.sign(c.points[48:68, 1] - centre)
        pts = c.points + np.array([dx, dy], np.float32) + mouth
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
        write_pts(clip / "annot" / f"{t + 1:06d}.pts", pts)
    writer.release()
    return clip
