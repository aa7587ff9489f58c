"""The copy probe: a generator that returns its input scores ratio 1 and moved 0; the CLI prints it."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.training.config import get_preset
from gannotate.training.probe import probe_checkpoint
from gannotate.training.trainer import load_checkpoint, train


@pytest.fixture(scope="module")
def smoke_checkpoint(tiny_cache, tmp_path_factory):
    return train(get_preset("smoke"), tmp_path_factory.mktemp("probe") / "run", tiny_cache, max_steps=1).checkpoint


def test_probe_is_consistent_and_reproducible(smoke_checkpoint, tiny_cache):
    r = probe_checkpoint(smoke_checkpoint, tiny_cache, n_batches=2, batch_size=3)
    assert r.step == 1 and r.n_triplets == 6
    assert r.pix_ratio == pytest.approx(r.pix / r.pix_copy) and 0 < r.mask < 1 and r.moved > 0
    assert probe_checkpoint(smoke_checkpoint, tiny_cache, n_batches=2, batch_size=3) == r


def test_a_copying_generator_scores_ratio_one(smoke_checkpoint, tiny_cache, tmp_path):
    ck = load_checkpoint(smoke_checkpoint)
    g = ck["G"]
    g["feature_layer.4.weight"].zero_()  # features = LReLU(bias) = 10 everywhere ...
    g["feature_layer.4.bias"].fill_(10.0)
    g["mask_layer.0.weight"].fill_(1.0)  # ... so the mask saturates at 1: out = input
    torch.save(ck, tmp_path / "copy.pt")
    r = probe_checkpoint(tmp_path / "copy.pt", tiny_cache, n_batches=2, batch_size=3)
    assert r.mask == pytest.approx(1.0) and r.moved < 1e-10 and r.pix_ratio == pytest.approx(1.0, abs=1e-5)
    assert r.triple < 1e-10


def test_cli_table_and_json(smoke_checkpoint, tiny_cache):
    out = CliRunner().invoke(main, ["train", "probe", str(smoke_checkpoint), "--cache", str(tiny_cache),
                                    "--batches", "1", "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output.strip().splitlines()[-1])
    assert row["step"] == 1 and row["n_triplets"] == 16 and "pix_ratio" in row
    out = CliRunner().invoke(main, ["train", "probe", str(smoke_checkpoint), "--cache", str(tiny_cache), "--batches", "1"])
    assert out.exit_code == 0 and "ratio" in out.output.splitlines()[0]
