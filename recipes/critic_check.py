"""Can the refiner's critic tell a real photo from its base render? Variants side by side, critic only.

    OMP_NUM_THREADS=1 python recipes/critic_check.py --pairs outputs/refine/pairs_profile.h5 [--steps 100]

Why: the first shipped refiner trained 1,414 steps against a critic (spectral norm, PyTorch's
default init, DiffAugment) whose score turned out not to depend on its input at all. This trains
fresh critics — no generator — on the easiest task a refiner's critic has: real target photos vs
the base renders P of the same pairs, each conditioned on the target heatmaps, hinge loss, Adam
(4e-4, β 0.5/0.999), batch 8, the same batches for every variant. Reported per variant: the share
of a held-out batch of 32 pairs ranked correctly (a real photo above the median render score and
a render below the median real score; 0.5 = chance) and the mean scores. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gannotate.models.discriminator import Discriminator, DiscriminatorConfig
from gannotate.training.diffaug import diff_augment
from gannotate.training.pairs import PairSet
from gannotate.training.config import RefineConfig
from gannotate.training.losses import RefineLoss
from gannotate.training.refine import RefineBatches, build_refine_networks

# name: (spectral norm, init, DiffAugment)
VARIANTS = {
    "spectral norm, default init, DiffAugment (first run)": (True, "default", True),
    "no spectral norm, default init, DiffAugment": (False, "default", True),
    "no spectral norm, Kaiming init, DiffAugment": (False, "kaiming", True),
    "no spectral norm, Kaiming init, no DiffAugment (now)": (False, "kaiming", False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, default=Path("outputs/refine/pairs_profile.h5"))
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    cfg = RefineConfig()
    pairs = PairSet.load(args.pairs)
    data = RefineBatches(pairs, np.arange(len(pairs)), cfg)
    G, _ = build_refine_networks(cfg, int(pairs.arrays["pts_y"].shape[1]))
    maps = RefineLoss(G, None, cfg, torch.device("cpu"), None, None, {})  # heatmaps, grouped as D sees them
    test = data.batch(10**6, n=32, augment=False)
    test_h = maps.d_maps(maps.heat(test["pts_y"]))
    out = {"pairs": str(args.pairs), "steps": args.steps, "variants": {}}
    for name, (sn, init, aug) in VARIANTS.items():
        torch.manual_seed(0)
        D = Discriminator(DiscriminatorConfig(image_size=cfg.image_size, in_channels=3 + test_h.shape[1],
                                              width=cfg.d_width, spectral_norm=sn, init=init))
        opt = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        t0 = time.perf_counter()
        for step in range(args.steps):
            b = data.batch(step, augment=False)
            h = maps.d_maps(maps.heat(b["pts_y"]))
            real, rh = diff_augment(b["y"], h, seed=2 * step) if aug else (b["y"], h)
            fake, fh = diff_augment(b["p"], h, seed=2 * step + 1) if aug else (b["p"], h)
            loss = F.relu(1 - D(torch.cat([real, rh], 1))).mean() + F.relu(1 + D(torch.cat([fake, fh], 1))).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            sr, sf = D(torch.cat([test["y"], test_h], 1)), D(torch.cat([test["p"], test_h], 1))
        acc = 0.5 * (float((sr > sf.median()).float().mean()) + float((sf < sr.median()).float().mean()))
        out["variants"][name] = {"accuracy": round(acc, 3), "score_real": round(float(sr.mean()), 3),
                                 "score_render": round(float(sf.mean()), 3), "score_std": round(float(torch.cat([sr, sf]).std()), 4),
                                 "seconds": round(time.perf_counter() - t0, 1)}
        print(name, out["variants"][name], flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
