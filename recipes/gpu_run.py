"""One command for a short GPU slot: build pairs, train the refiner for a fixed budget, bring back what matters.

    python recipes/gpu_run.py --sources outputs/refine/sources.npz --budget 8 --out $OUT [--init $PREV]

The slot gets only the repository tree (≤ 64 MiB), so the training data travels as
``sources.npz`` (photo crops and clip frames as JPEG, written here by
``python recipes/gpu_run.py --make-sources --data ../shared/data``; carry it along). On the GPU
machine the script:
  1. rebuilds the pairs file from the sources with every CPU core (joblib), base renderer as given;
  2. trains ``--preset`` (default ``refine-gpu``: batch 32, bf16 autocast) for ``--budget`` minutes,
     resuming from ``--init`` (a folder of ``checkpoint.part*`` files from an earlier slot) if given;
  3. writes to ``--out``: ``generator.pt`` (fp16 export, < 16 MiB), the training checkpoint split into
     ``checkpoint.partN`` files of < 15 MiB (the next slot's ``--init``), ``stats.jsonl``, a sample
     grid, and ``refine_train_gpu.json`` with steps/s, images/s and augment img/s with the refined
     generator, the GPU named (copy it to benchmarks/results/ when it comes back).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

PART_BYTES = 15 * 2**20


def split_file(path: Path, out_dir: Path, stem: str) -> list[Path]:
    """Cut ``path`` into ``stem.part0, part1, ...`` of at most PART_BYTES (the slot returns files < 16 MiB)."""
    data = path.read_bytes()
    parts = []
    for i in range(0, max(len(data), 1), PART_BYTES):
        p = out_dir / f"{stem}.part{i // PART_BYTES}"
        p.write_bytes(data[i:i + PART_BYTES])
        parts.append(p)
    return parts


def join_parts(in_dir: Path, stem: str, dest: Path) -> Path:
    """Reassemble ``stem.part*`` (in numeric order) into ``dest``; the loader then verifies it (zip CRC)."""
    parts = sorted(in_dir.glob(f"{stem}.part*"), key=lambda p: int(p.suffix[5:]))
    if not parts:
        raise SystemExit(f"--init {in_dir}: no {stem}.part* files")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dest


def make_sources(data: Path, out: Path) -> None:
    from gannotate.detector.data import split_by_photo
    from gannotate.training.pairs import PairConfig, load_clip_frames, load_photo_crops, save_sources

    cfg = PairConfig()
    photos_dir = data / "300w_afw_helen_spinkoo"
    train_faces, _ = split_by_photo(photos_dir / "image_for_pts.txt", photos_dir / "images", 0.15, 0)
    photos = load_photo_crops(train_faces, cfg.size, cfg.margin)
    clips = load_clip_frames(data / "videos_300vw_style", cfg.frames_per_clip)
    path = save_sources(out, photos, clips)
    print(json.dumps({"sources": str(path), "mib": round(path.stat().st_size / 2**20, 1), "photos": len(photos),
                      "clips": len(clips)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=Path("outputs/refine/sources.npz"))
    ap.add_argument("--make-sources", action="store_true", help="write --sources from --data and stop")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--renderer", default="profile")
    ap.add_argument("--preset", default="refine-gpu")
    ap.add_argument("--budget", type=float, default=8.0, help="minutes for pairs + training (≤ 9 on a 15-minute slot)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--init", type=Path, default=None, help="folder with checkpoint.part* from an earlier slot")
    ap.add_argument("--out", type=Path, required=False, default=Path("outputs/gpu_run"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/gannotate_gpu_run"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.make_sources:
        make_sources(args.data, args.sources)
        return

    import os

    import torch

    from gannotate.render import RendererSpec, make_renderer
    from gannotate.training.config import REFINE_PRESETS
    from gannotate.training.pairs import PairConfig, build_pairs, load_sources
    from gannotate.training.refine import export_refiner, train_refiner

    t0 = time.perf_counter()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.work / "run"
    pairs = args.work / "pairs.h5"
    photos, clips = load_sources(args.sources)
    build_pairs(pairs, photos, clips, PairConfig(renderer=args.renderer), n_jobs=args.jobs or os.cpu_count() or 1)
    t_pairs = time.perf_counter() - t0
    if args.init is not None:
        join_parts(args.init, "checkpoint", run_dir / "checkpoint.pt")
    cfg = replace(REFINE_PRESETS[args.preset], image_size=PairConfig().size)  # the pairs' size
    budget = max(0.5, args.budget - t_pairs / 60 - 0.5)  # leave time for export and the augment timing
    res = train_refiner(cfg, pairs, run_dir, max_steps=args.max_steps, time_budget_min=budget, resume=True, device=device)
    gen = export_refiner(res.checkpoint, args.out / "generator.pt", info={"trained_on": device})
    split_file(res.checkpoint, args.out, "checkpoint")
    shutil.copyfile(run_dir / "stats.jsonl", args.out / "stats.jsonl")
    samples = sorted((run_dir / "samples").glob("*.png"))
    if samples:
        shutil.copyfile(samples[-1], args.out / "samples_last.png")
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    r = make_renderer(RendererSpec.of("gan", generator=gen, device=device, batch_size=64))
    import numpy as np

    imgs = np.stack([p.image for p in photos[:64]])
    pts = np.stack([p.points for p in photos[:64]]).astype(np.float32)
    r.render(imgs[:8], pts[:8], pts[:8] + 1)  # warm-up
    t1 = time.perf_counter()
    r.render(imgs, pts, pts + 1)
    render_ips = len(imgs) / (time.perf_counter() - t1)
    result = {
        "benchmark": "refine_train_gpu",
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "none (cpu run)",
        "torch": torch.__version__, "preset": args.preset, "steps": res.step, "stopped_by": res.stopped_by,
        "pairs_build_s": round(t_pairs, 1),
        "steps_per_s": float(np.median([row["steps_per_s"] for row in rows[-10:]])) if rows else None,
        "images_per_s": float(np.median([row["images_per_s"] for row in rows[-10:]])) if rows else None,
        "render_gan_images_per_s": round(render_ips, 1), "probe": res.probe,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    (args.out / "refine_train_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
