"""Nothing half-written, nothing stale (issue 23, items 4 and 5): merges and exports appear whole or not
at all, and replace what an earlier merge or export left instead of adding to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.errors import DatasetCorruptError, DatasetError
from gannotate.io.exporters import EXPORT_MARKER, export
from gannotate.io.hdf5 import DatasetReader
from gannotate.merge import merge_outputs
from gannotate.plan import PlanConfig
from gannotate.run.bookkeeping import run_status

ROOT = Path(__file__).resolve().parents[1]


def shards(root: Path, face_folder: Path, seed: int, n: int = 2) -> list[Path]:
    out = []
    for i in range(2):
        d = root / f"seed{seed}_s{i}"
        run_augment(AugmentConfig(out=d, input=face_folder, plan=PlanConfig(n=n, seed=seed), size=32, shard=(i, 2)))
        out.append(d)
    return out


def damage_image(h5: Path, row: int) -> None:
    with h5py.File(h5, "a") as f:
        img = f["images"][row]
        img[0, 0, 0] ^= 0xFF
        f["images"][row] = img


class TestMerge:
    def test_a_damaged_shard_leaves_out_as_it_was(self, tmp_path, face_folder):
        s0, s1 = shards(tmp_path, face_folder, seed=1)
        damage_image(s1 / "dataset.h5", 3)  # found only after s0's rows are in the new file
        r = CliRunner().invoke(main, ["merge", str(tmp_path / "new"), str(s0), str(s1)])
        assert r.exit_code == 4, r.output
        assert not (tmp_path / "new" / "dataset.h5").exists() and not (tmp_path / "new" / "images").exists()
        assert [p.name for p in (tmp_path / "new").iterdir() if not p.name.startswith(".gannotate")] == []
        good = shards(tmp_path, face_folder, seed=2)
        merge_outputs(tmp_path / "old", good)
        with pytest.raises(DatasetCorruptError):
            merge_outputs(tmp_path / "old", [s0, s1])
        assert run_status(tmp_path / "old").done  # the earlier merge is untouched, manifest and all
        with DatasetReader(tmp_path / "old" / "dataset.h5") as r:
            assert len(r) == 8

    def test_a_second_merge_replaces_the_old_images(self, tmp_path, face_folder):
        out = tmp_path / "m"
        merge_outputs(out, shards(tmp_path, face_folder, seed=1, n=3))  # 12 samples
        second = shards(tmp_path, face_folder, seed=2, n=1)  # 4 samples, other names
        res = merge_outputs(out, second)
        assert res.n_total == 4
        want = sorted(p.name for d in second for p in (d / "images").iterdir())
        assert sorted(p.name for p in (out / "images").iterdir()) == want
        with DatasetReader(out / "dataset.h5") as r:
            assert len(r) == 4
        assert not [p for p in out.iterdir() if ".staging-" in p.name or p.name.endswith(".tmp")]

    def test_a_merge_is_refused_while_another_run_holds_out(self, tmp_path, face_folder):
        from gannotate.io.filelock import run_lock

        s = shards(tmp_path, face_folder, seed=1)
        code = f"from gannotate.io.filelock import run_lock\nwith run_lock({str(tmp_path / 'm')!r}):\n" \
               "    print('held', flush=True); input()"
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert p.stdout.readline().strip() == "held"
            with pytest.raises(DatasetError, match="in use by another run"):
                merge_outputs(tmp_path / "m", s)
        finally:
            p.communicate("\n", timeout=30)
        with run_lock(tmp_path / "m"):
            pass  # released: a merge may go on now
        assert merge_outputs(tmp_path / "m", s).n_total == 8


KILLED_MERGE = """
import sys, time
from pathlib import Path
import gannotate.io.hdf5 as h
from gannotate.merge import merge_outputs

real = h.DatasetWriter.append
def slow(self, *a, **k):
    n = real(self, *a, **k)
    print("appended", n, flush=True)
    time.sleep(60)  # killed here: half the samples are in the new file
    return n
h.DatasetWriter.append = slow
merge_outputs(Path({out!r}), [Path(p) for p in {shards!r}])
"""


@pytest.mark.slow
def test_kill_9_during_a_merge_leaves_no_half_dataset(tmp_path, face_folder):
    s = shards(tmp_path, face_folder, seed=1)
    out = tmp_path / "m"
    merge_outputs(out, shards(tmp_path, face_folder, seed=2, n=3))  # an earlier, complete merge (12 samples)
    code = textwrap.dedent(KILLED_MERGE.format(out=str(out), shards=[str(p) for p in s]))
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}) as p:
        assert p.stdout.readline().startswith("appended")
        os.kill(p.pid, signal.SIGKILL)
    with DatasetReader(out / "dataset.h5") as r:  # the old dataset, whole: never a half of the new one
        assert len(r) == 12
    assert run_status(out).done
    res = merge_outputs(out, s)  # a re-run completes and removes the killed merge's leftovers
    assert res.n_total == 8
    assert not [q for q in out.iterdir() if ".staging-" in q.name or q.name.endswith(".tmp")]


class TestExport:
    @pytest.fixture()
    def datasets(self, tmp_path, face_folder):
        big = tmp_path / "big"
        small = tmp_path / "small"
        run_augment(AugmentConfig(out=big, input=face_folder, plan=PlanConfig(n=4, seed=1), size=32, formats=("h5",)))
        run_augment(AugmentConfig(out=small, input=face_folder, plan=PlanConfig(n=1, seed=2), size=32, formats=("h5",)))
        return big / "dataset.h5", small / "dataset.h5"

    @pytest.mark.parametrize("fmt", ["pts", "ljson"])
    def test_an_export_over_an_older_one_replaces_it(self, tmp_path, datasets, fmt):
        big, small = datasets
        out = tmp_path / "export"
        export(big, fmt, out)
        assert len(list((out / "images").glob("*.png"))) == 16 or len(list(out.glob("*.png"))) == 16
        export(small, fmt, out)
        pngs = list(out.rglob("*.png"))
        assert len(pngs) == 4  # only the new export's samples, none of the old
        assert json.loads((out / EXPORT_MARKER).read_text())["n_samples"] == 4

    def test_a_folder_that_is_not_an_export_is_refused_untouched(self, tmp_path, datasets):
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        r = CliRunner().invoke(main, ["export", str(datasets[1]), "--format", "coco", "--out", str(out)])
        assert r.exit_code == 3 and "not a gannotate export" in r.output
        assert [p.name for p in out.iterdir()] == ["notes.txt"]

    def test_a_failed_export_leaves_nothing_and_keeps_the_earlier_one(self, tmp_path, datasets):
        big, small = datasets
        out = tmp_path / "export"
        export(small, "hrnet-csv", out)
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        damage_image(big, 15)  # the last image: found after 15 were written
        r = CliRunner().invoke(main, ["export", str(big), "--format", "hrnet-csv", "--out", str(out)])
        assert r.exit_code == 4
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
        assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []
        r = CliRunner().invoke(main, ["export", str(big), "--format", "pts", "--out", str(tmp_path / "fresh")])
        assert r.exit_code == 4 and not (tmp_path / "fresh").exists()
