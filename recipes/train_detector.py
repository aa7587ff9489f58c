"""Recipe: does generated data help a landmark detector? "real only" vs "real + generated".

Both arms train the same network for the same steps with the same seed; only the training data
differ. Real faces: AFW + Helen train photos of ../shared/data/300w_afw_helen_spinkoo, split by
*photo* (several faces share one photo) into train / validation. Generated faces: ``gannotate
augment`` run on the training split only. Both arms are scored on the validation faces (NME by yaw
bin, failure rates, AUC, CED plot); the results land in ``OUT/results.md``, ``OUT/results.json``
and ``OUT/ced.png``.

Usage::

    python recipes/train_detector.py --out outputs/detector_recipe            # both arms
    python recipes/train_detector.py --arms real --steps 1500 --time-budget 1500   # the shipped model
    python recipes/train_detector.py --generated outputs/gen/train.h5          # reuse a generated set

An arm whose ``checkpoint.pt`` already holds all its steps is not retrained (re-run to resume the
evaluation only). The shipped ``gannotate/assets/detector.pt`` is ``OUT/real/checkpoint.pt``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np
import torch

from gannotate.annotate import Annotator, FaceFinder, calibrate_box_map
from gannotate.detector.data import CropAugmentConfig, canvas_size, load_training_faces, split_by_photo, write_list_file
from gannotate.detector.model import DetectorConfig, load_checkpoint, save_checkpoint, training_complete
from gannotate.detector.train import DetectorTrainConfig, train_with_generated
from gannotate.metrics import compare_checkpoints
from gannotate.io.folders import discover, load_face
from gannotate.landmarks import nme

log = logging.getLogger("train_detector")

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "300w_afw_helen_spinkoo"


def _generate(train_list: Path, out: Path, poses: str, n: int, seed: int, size: int, margin: float) -> Path | None:
    """Run ``gannotate augment`` on the training split (targets uniform in yaw); None when it fails."""
    h5 = out / "generated.h5"
    cmd = [sys.executable, "-c", "from gannotate.cli import main; main()", "augment", "--input", str(train_list), "--poses", poses,
           "--pose-sampling", "uniform", "--n", str(n), "--size", str(size), "--margin", str(margin), "--workers", "2",
           "--out", str(out), "--seed", str(seed), "--format", "h5", "-q"]
    log.info("running %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode not in (0, 1):
        log.error("augment failed (%d): %s", res.returncode, res.stderr.strip()[-2000:])
        return None
    found = sorted(out.glob("*.h5"))
    return found[0] if found else (h5 if h5.is_file() else None)


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Folder with image_for_pts.txt and images/ (300W AFW + Helen train).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("outputs/detector_recipe"), show_default=True)
@click.option("--arms", default="real,real+generated", show_default=True, help="Comma-separated arms to run.")
@click.option("--steps", type=int, default=1500, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--width", type=int, default=32, show_default=True, help="Detector width (channels at 32²).")
@click.option("--time-budget", type=float, default=0.0, help="Stop an arm after this many seconds (0: no limit).")
@click.option("--val-fraction", type=float, default=0.15, show_default=True, help="Share of photos held out.")
@click.option("--generated", type=click.Path(path_type=Path), default=None, help="An existing generated .h5 to use.")
@click.option("--poses", default="-60:60", show_default=True, help="Yaw range for augment.")
@click.option("--gen-size", type=int, default=192, show_default=True,
              help="augment --size: 192 with --gen-margin 0.4 matches the detector's training canvas.")
@click.option("--gen-margin", type=float, default=0.4, show_default=True, help="augment --margin.")
@click.option("--recipe", type=click.Choice(["mixed", "pretrain"]), default="mixed", show_default=True,
              help="How the real+generated arm uses the generated faces (gannotate detector train --recipe).")
@click.option("--real-share", type=float, default=0.5, show_default=True, help="Real faces per batch (--recipe mixed).")
@click.option("--ship-arm", default="real", show_default=True, help="The arm --ship copies.")
@click.option("--n", "n_per_face", type=int, default=4, show_default=True, help="Generated faces per training face.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads (1 is fastest on a shared, oversubscribed machine).")
@click.option("--calibration-faces", type=int, default=120, show_default=True,
              help="Training faces used to fit the YuNet-box → landmark-box map (0: skip it and the annotate check).")
@click.option("--ship", type=click.Path(path_type=Path), default=None,
              help="Copy the --ship-arm checkpoint here (gannotate/assets/detector.pt).")
@click.option("--seed", type=int, default=0, show_default=True)
def main(data, out, arms, steps, batch_size, width, time_budget, val_fraction, generated, poses, gen_size, gen_margin,
         recipe, real_share, ship_arm, n_per_face, threads, calibration_faces, ship, seed):
    """Train and compare the detector arms; write results.md, results.json and ced.png under OUT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)

    # Split the real faces by photo.
    train_pairs, val_pairs = split_by_photo(data / "image_for_pts.txt", data / "images", val_fraction, seed)
    train_list = write_list_file(out / "split" / "train.txt", train_pairs)
    val_list = write_list_file(out / "split" / "val.txt", val_pairs)
    log.info("split: %d train faces, %d validation faces (no shared photo)", len(train_pairs), len(val_pairs))

    cfg = DetectorTrainConfig(steps=steps, batch_size=batch_size, seed=seed, num_threads=threads, time_budget_s=time_budget,
                      device="cuda" if torch.cuda.is_available() else "cpu", real_share=real_share)
    net_cfg = DetectorConfig(width=width)
    canvas = canvas_size(net_cfg.input_size, cfg.margin)
    val_faces, _ = load_training_faces([val_list], "ibug68", canvas)

    # Train each arm (same network, steps and seed; only the data differ).
    arm_sources: dict[str, tuple[Path, Path | None]] = {"real": (train_list, None)}
    if "real+generated" in arms.split(","):
        gen = generated or _generate(train_list, out / "generated", poses, n_per_face, seed, gen_size, gen_margin)
        if gen is None:
            log.warning("no generated data (gannotate augment unavailable or failed): the comparison is pending")
        else:
            arm_sources["real+generated"] = (train_list, gen)
    timings = {}
    for arm, (real_src, gen_src) in arm_sources.items():
        if arm not in arms.split(","):
            continue
        run_dir = out / arm.replace("+", "_")
        ckpt = run_dir / "checkpoint.pt"
        if training_complete(ckpt, steps):
            log.info("%s: already trained (%s)", arm, ckpt)
            continue
        faces, failures = load_training_faces([real_src], "ibug68", canvas)
        gen_faces = load_training_faces([gen_src], "ibug68", canvas)[0] if gen_src else None
        t0 = time.time()
        train_with_generated(faces, gen_faces, run_dir, cfg, recipe, net_cfg, CropAugmentConfig(), val=val_faces,
                             meta={"sources": [str(s) for s in (real_src, gen_src) if s], "arm": arm, "split_seed": seed,
                                   "val_fraction": val_fraction})
        timings[arm] = time.time() - t0
        log.info("%s: trained in %.0f s on %d faces (%d skipped)", arm, timings[arm], len(faces), len(failures))

    # Evaluate every trained arm on the validation faces (ground-truth landmark-box crops).
    ckpts = {arm: out / arm.replace("+", "_") / "checkpoint.pt" for arm in arm_sources}
    ckpts = {a: c for a, c in ckpts.items() if c.is_file()}
    report = compare_checkpoints(ckpts, val_list, out / "ced.png")
    summary = {"arms": report.summary, "train_time_s": {}, "steps_done": {}}
    calibration = None  # (box map, faces matched): the same for every arm, so fitted once, when first needed
    for arm, ckpt in ckpts.items():
        net, meta = load_checkpoint(ckpt)
        summary["train_time_s"][arm], summary["steps_done"][arm] = meta.get("train_time_s"), meta.get("steps_done")
        # Stamp what `evaluate fidelity` and `annotate` need: the real validation NME and the
        # YuNet-box → landmark-box map fitted on training photos.
        extra = {"val_nme": round(report.summary[arm]["nme"], 4), "val_faces": len(val_pairs)}
        if "yunet_box_map" not in meta and calibration_faces > 0:
            if calibration is None:
                calibration = _calibrate(train_list, calibration_faces)
            bmap, n_matched = calibration
            extra |= {"yunet_box_map": bmap, "yunet_box_map_faces": n_matched}
        save_checkpoint(ckpt, net, {**meta, **extra})
    if ship_arm in ckpts and calibration_faces > 0:
        summary["annotate_pipeline"] = _annotate_pipeline(ckpts[ship_arm], val_list)
    lines = [f"Validation: {len(val_pairs)} faces on photos never seen in training ({len(train_pairs)} training faces).", "",
             report.markdown, ""]
    for arm in ckpts:
        lines.append(f"- {arm}: {summary['steps_done'][arm]} steps in {summary['train_time_s'][arm]:.0f} s")
    if "annotate_pipeline" in summary:
        a = summary["annotate_pipeline"]
        lines.append(f"- annotate pipeline (YuNet box, refine 1) on the validation photos: {a['found']}/{a['faces']} faces found, "
                     f"NME {a['nme']:.2f} % on those")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    if ship is not None and ship_arm in ckpts:
        ship.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ckpts[ship_arm], ship)
        from gannotate.detector.exported import export_onnx

        graph = export_onnx(ship, ship.with_suffix(".onnx"))  # augment's quality scorer reads this copy
        log.info("shipped %s → %s (+ %s)", ckpts[ship_arm], ship, graph.name)
    click.echo((out / "results.md").read_text())


def _calibrate(train_list: Path, n_faces: int) -> tuple[dict, int]:
    """Fit the YuNet-box → landmark-box map on (at most ``n_faces``) training faces."""
    faces = discover(train_list).faces[:n_faces]
    loaded = [load_face(f) for f in faces]
    bmap, n = calibrate_box_map([im for im, _ in loaded], [p for _, p in loaded], FaceFinder())
    return asdict(bmap), n


def _annotate_pipeline(ckpt: Path, val_list: Path) -> dict:
    """NME of the full annotate path (YuNet + detector) on the validation photos; misses counted apart."""
    annotator = Annotator.create(ckpt)
    errs, found = [], 0
    faces = discover(val_list).faces
    for ref in faces:
        image, truth = load_face(ref)
        preds = annotator.annotate(image)
        if not preds:
            continue
        found += 1
        errs.append(min(float(nme(p, truth)) for p in preds))  # the detection of this face among the photo's faces
    return {"faces": len(faces), "found": found, "nme": float(np.mean(errs)) if errs else float("nan")}


if __name__ == "__main__":
    main()
