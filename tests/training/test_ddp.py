"""Two gloo processes (torchrun-style environment) compute the single-process training step."""

from __future__ import annotations

import os
import socket

import pytest
import torch

from gannotate.training.config import get_preset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cache: str, run_dir: str) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gannotate.training.trainer import train

    try:
        train(get_preset("smoke", batch_size=4), run_dir, cache, max_steps=2, device="cpu")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one(tiny_cache, tmp_path):
    import torch.multiprocessing as mp

    from gannotate.training.trainer import load_checkpoint, train

    mp.spawn(_worker, args=(2, _free_port(), str(tiny_cache), str(tmp_path / "ddp")), nprocs=2, join=True)
    train(get_preset("smoke", batch_size=4), tmp_path / "one", tiny_cache, max_steps=2)
    a, b = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt"), load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    assert a["world_size"] == 2 and b["world_size"] == 1
    for opt in ("opt_G", "opt_D"):
        for i, st in b[opt]["state"].items():
            # Adam's first moment after two steps is 0.25·g1 + 0.5·g2: the gradients themselves, linearly.
            # g2 is taken at weights that already differ by all-reduce rounding (amplified by Adam's
            # normalisation where g1 ≈ 0), hence 1e-6 rather than 1e-7.
            torch.testing.assert_close(a[opt]["state"][i]["exp_avg"], st["exp_avg"], rtol=1e-3, atol=1e-6)
    # (weights are not compared: biases before a non-affine InstanceNorm have a gradient of pure
    # rounding noise, which Adam scales to ±lr in either run)
