"""Ground-truth checksums (``truth_crc32``): a flipped bit in landmarks, params, pose or an index is
found wherever a dataset is read, named by row and field, and exits 4 (issue 23, item 1)."""

from __future__ import annotations

import os
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.errors import DatasetCorruptError
from gannotate.io.hdf5 import DatasetReader
from gannotate.io.hdf5.layout import TRUTH_CRC_DATASET, TRUTH_FIELDS

sys.path.insert(0, os.path.dirname(__file__))
from test_hdf5 import batch, open_writer  # noqa: E402


def make(path, n=6):
    with open_writer(path) as w:
        w.add_source("faces/a")
        w.add_source("faces/b")
        images, lm, params, pose, _, ti = batch(0, n)
        w.append(images, lm, params, pose, np.arange(n) % 2, ti)
    return path


def flip_bit(path, field: str, row: int, bit: int = 30) -> None:
    """Flip one bit of the first value of ``field`` in ``row`` (bit 30 of a float32: 50.45 → ~2e38)."""
    with h5py.File(path, "a") as f:
        ds = f[field]
        value = ds[row]
        flat = np.array(value).reshape(-1)
        raw = flat[:1].view(np.uint32 if flat.dtype.itemsize == 4 else np.uint8)
        raw ^= np.array(1 << (bit % (8 * flat.dtype.itemsize)), raw.dtype)
        ds[row] = flat.reshape(np.shape(value)) if np.ndim(value) else flat[0]


@pytest.mark.parametrize("field", TRUTH_FIELDS)
@pytest.mark.parametrize("bit", [0, 30])
def test_a_flipped_bit_in_any_field_is_named_by_row_and_field(tmp_path, field, bit):
    path = make(tmp_path / "d.h5")
    flip_bit(path, field, 4, bit)
    with pytest.raises(DatasetCorruptError) as e:
        DatasetReader(path)
    assert e.value.rows == [4] and e.value.what == field
    msg = str(e.value)
    assert "\n" not in msg and "rows 4" in msg and field in msg


def test_intact_file_reads_and_old_files_without_the_checksum_still_read(tmp_path):
    path = make(tmp_path / "d.h5")
    with DatasetReader(path) as r:
        assert r.has_truth_checksums and len(r) == 6
    with h5py.File(path, "a") as f:  # a file written before truth_crc32 existed
        assert f[TRUTH_CRC_DATASET].shape == (6, len(TRUTH_FIELDS))
        del f[TRUTH_CRC_DATASET]
    flip_bit(path, "landmarks", 2)
    with DatasetReader(path) as r:  # read unchecked in its ground truth (images still checked)
        assert not r.has_truth_checksums and r.has_checksums and len(r) == 6


def test_resume_refuses_a_damaged_row(tmp_path):
    path = make(tmp_path / "d.h5")
    flip_bit(path, "target_index", 1)
    with pytest.raises(DatasetCorruptError, match="target_index"):
        open_writer(path)


def test_resume_keeps_checksumming(tmp_path):
    path = make(tmp_path / "d.h5", n=3)
    with open_writer(path) as w:
        w.append(*batch(3, 2))
    with DatasetReader(path) as r:
        assert len(r) == 5 and r.has_truth_checksums
    flip_bit(path, "pose", 4)
    with pytest.raises(DatasetCorruptError, match="pose"):
        DatasetReader(path)


@pytest.mark.parametrize("args", [
    ["export", "{d}", "--format", "pts", "--out", "{o}"],
    ["export", "{d}", "--format", "ljson", "--out", "{o}"],
    ["export", "{d}", "--format", "hrnet-csv", "--out", "{o}"],
    ["export", "{d}", "--format", "coco", "--out", "{o}"],
    ["preview", "{d}", "--out", "{o}/p.png", "--n", "4"],
])
def test_cli_exits_4_with_one_line_and_writes_nothing(tmp_path, args):
    path = make(tmp_path / "d.h5")
    flip_bit(path, "landmarks", 3)
    out = tmp_path / "o"
    r = CliRunner().invoke(main, [a.format(d=path, o=out) for a in args])
    assert r.exit_code == 4, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "landmarks" in lines[0] and "rows 3" in lines[0], r.output
    assert not out.exists()


def test_evaluate_fidelity_exits_4(tmp_path):
    path = make(tmp_path / "d.h5")
    flip_bit(path, "params", 0)
    r = CliRunner().invoke(main, ["evaluate", "fidelity", str(path)])
    assert r.exit_code == 4, r.output
    assert "params" in r.output and "rows 0" in r.output


def test_merge_refuses_a_damaged_shard(tmp_path, face_folder):
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.merge import merge_outputs
    from gannotate.plan import PlanConfig

    shards = []
    for i in range(2):
        d = tmp_path / f"s{i}"
        run_augment(AugmentConfig(out=d, input=face_folder, plan=PlanConfig(n=2, seed=1), size=32, shard=(i, 2),
                                  formats=("h5",)))
        shards.append(d)
    flip_bit(shards[1] / "dataset.h5", "landmarks", 2)
    with pytest.raises(DatasetCorruptError, match="landmarks"):
        merge_outputs(tmp_path / "out", shards)
    assert not (tmp_path / "out" / "dataset.h5").exists()
