"""gannotate.io.hdf5: layout, attrs, resume, and crash safety (a sample is fully committed or absent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from gannotate.errors import DatasetError
from gannotate.io.hdf5 import DatasetReader, DatasetWriter
from gannotate.landmarks import IBUG68

S, P = 16, 7


def batch(start: int, b: int):
    """Deterministic batch whose every array encodes the global row index."""
    idx = np.arange(start, start + b)
    images = np.broadcast_to((idx % 251).astype(np.uint8)[:, None, None, None], (b, S, S, 3)).copy()
    landmarks = np.broadcast_to(idx[:, None, None].astype(np.float32), (b, 68, 2)).copy()
    params = np.broadcast_to(idx[:, None].astype(np.float32), (b, P)).copy()
    pose = np.stack([idx, -idx, idx * 0.5], axis=1).astype(np.float32)
    return images, landmarks, params, pose, np.zeros(b, np.int32), idx.astype(np.int32)


def check_rows(r: DatasetReader, n: int) -> None:
    assert len(r) == n
    idx = np.arange(n)
    np.testing.assert_array_equal(r.target_index, idx)
    np.testing.assert_array_equal(r.landmarks[:, 5, 1], idx.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(r.images)[:, 3, 4, 2], (idx % 251).astype(np.uint8))
    np.testing.assert_array_equal(r.params[:, -1], idx)


def open_writer(path, **kw):
    return DatasetWriter(path, scheme="ibug68", image_size=S, n_params=P,
                         attrs={"seed": 3, "renderer": "warp", "command": "test", "model_sha256": "ab"}, **kw)


class TestLayout:
    def test_datasets_attrs_chunks(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            assert w.add_source("faces/a") == 0
            assert w.add_source("faces/b") == 1
            assert w.add_source("faces/a") == 0
            w.append(*batch(0, 5))
            assert w.n_samples == 5
        with h5py.File(path, "r") as f:
            assert f["images"].shape == (5, S, S, 3) and f["images"].dtype == np.uint8
            assert f["images"].chunks == (1, S, S, 3) and f["images"].compression is None
            assert f["landmarks"].dtype == np.float32 and f["landmarks"].shape == (5, 68, 2)
            assert f["params"].shape == (5, P) and f["pose"].shape == (5, 3)
            assert f["source_index"].dtype == np.int32 and f["target_index"].dtype == np.int32
            a = f.attrs
            assert a["scheme"] == "ibug68" and a["coord_origin"] == "0-based pixel centres"
            assert a["flip_index"].dtype.kind == "i"
            np.testing.assert_array_equal(a["flip_index"], IBUG68.flip_index)
            assert a["seed"] == 3 and a["renderer"] == "warp" and a["command"] == "test"
            assert a["model_sha256"] == "ab" and a["version"] and a["n_samples"] == 5
        with DatasetReader(path) as r:
            check_rows(r, 5)
            assert r.sources == ["faces/a", "faces/b"]
            s = r[3]
            assert s["image"].shape == (S, S, 3) and s["target_index"] == 3 and s["source"] == "faces/a"
            np.testing.assert_array_equal(s["pose"], [3, -3, 1.5])
            assert r.attrs["scheme"] == "ibug68" and r.scheme == "ibug68"

    def test_compression_option(self, tmp_path):
        with open_writer(tmp_path / "d.h5", compression="gzip") as w:
            w.add_source("a")
            w.append(*batch(0, 2))
        with h5py.File(tmp_path / "d.h5", "r") as f:
            assert f["images"].compression == "gzip"

    def test_iter_batches_and_views(self, tmp_path):
        with open_writer(tmp_path / "d.h5") as w:
            w.add_source("a")
            for start in range(0, 10, 4):
                w.append(*batch(start, min(4, 10 - start)))
        with DatasetReader(tmp_path / "d.h5") as r:
            sizes = [len(b["images"]) for b in r.iter_batches(3)]
            assert sizes == [3, 3, 3, 1]
            got = np.concatenate([b["target_index"] for b in r.iter_batches(3)])
            np.testing.assert_array_equal(got, np.arange(10))
            assert r.images.shape == (10, S, S, 3)
            np.testing.assert_array_equal(r.images[[7, 2, 7]][:, 0, 0, 0], [7, 2, 7])
            np.testing.assert_array_equal(r.images[::4][:, 0, 0, 0], [0, 4, 8])
            assert r.images[-1][0, 0, 0] == 9
            with pytest.raises(IndexError):
                r.images[10]

    def test_shape_errors(self, tmp_path):
        with open_writer(tmp_path / "d.h5") as w:
            w.add_source("a")
            im, lm, pa, po, si, ti = batch(0, 2)
            with pytest.raises(DatasetError, match="landmarks"):
                w.append(im, lm[:, :66], pa, po, si, ti)
            with pytest.raises(DatasetError, match="source_index out of range"):
                w.append(im, lm, pa, po, [0, 1], ti)
            with pytest.raises(DatasetError, match="uint8"):
                w.append(im.astype(np.float32), lm, pa, po, si, ti)
            with pytest.raises(DatasetError, match="target_index has shape"):
                w.append(im, lm, pa, po, si, [0, 1, 2])  # a wrong length is a DatasetError, not numpy's ValueError
            with pytest.raises(DatasetError, match="params has shape"):
                w.append(im, lm, pa[:, :-1].ravel()[:-1], po, si, ti)
            assert w.n_samples == 0


class TestResume:
    def test_resume_continues_and_done_pairs(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 3))
        with open_writer(path) as w:
            assert w.n_samples == 3 and w.add_source("a") == 0 and w.add_source("b") == 1
            assert w.done_pairs() == {(0, 0), (0, 1), (0, 2)}
            w.append(*batch(3, 2))
        with DatasetReader(path) as r:
            check_rows(r, 5)
            assert r.sources == ["a", "b"]

    def test_resume_false_starts_over(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 3))
        with open_writer(path, resume=False) as w:
            assert w.n_samples == 0 and w.sources == []

    def test_incompatible_resume(self, tmp_path):
        path = tmp_path / "d.h5"
        open_writer(path).close()
        with pytest.raises(DatasetError, match="cannot resume"):
            DatasetWriter(path, scheme="ibug66", image_size=S, n_params=P, attrs={})

    def test_uncommitted_rows_are_ignored_then_overwritten(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 4))
        with h5py.File(path, "a") as f:  # a crash after writing data but before the commit
            for name in ("images", "landmarks", "target_index"):
                f[name].resize(7, axis=0)
                f[name][4:] = 99
            f["sources"].resize(2, axis=0)
            f["sources"][1] = "half-added"
        with DatasetReader(path) as r:
            check_rows(r, 4)
            assert r.images.shape[0] == 4 and r.sources == ["a"]
        with open_writer(path) as w:
            assert w.n_samples == 4 and w.done_pairs() == {(0, i) for i in range(4)}
            assert w.add_source("c") == 1
            w.append(*batch(4, 3))
        with DatasetReader(path) as r:
            check_rows(r, 7)
            assert r.sources == ["a", "c"]

    def test_missing_or_foreign_file(self, tmp_path):
        with pytest.raises(DatasetError, match="not found"):
            DatasetReader(tmp_path / "none.h5")
        (tmp_path / "x.h5").write_bytes(b"not hdf5")
        with pytest.raises(DatasetError, match="not a readable HDF5"):
            DatasetReader(tmp_path / "x.h5")
        with h5py.File(tmp_path / "y.h5", "w") as f:
            f["other"] = 1
        with pytest.raises(DatasetError, match="not a gannotate dataset"):
            DatasetReader(tmp_path / "y.h5")


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_hdf5 import batch, open_writer
    w = open_writer({path!r})
    w.add_source("a")
    start = w.n_samples
    while True:
        w.append(*batch(start, 3))
        start += 3
        print(start, flush=True)
    """
)


def test_sigkill_mid_append_loop_leaves_valid_resumable_file(tmp_path):
    """Kill a writer with SIGKILL while it appends; the file reopens with whole samples only."""
    path = tmp_path / "d.h5"
    code = CHILD.format(tests=os.path.dirname(__file__), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 30 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert seen >= 30, "child writer did not get going"
    with DatasetReader(path) as r:
        n = len(r)
        assert n >= seen and n % 3 == 0
        check_rows(r, n)
    with open_writer(path) as w:
        assert w.n_samples == n
        w.append(*batch(n, 3))
    with DatasetReader(path) as r:
        check_rows(r, n + 3)


def test_file_that_died_during_creation_starts_over(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", (0, S, S, 3), np.uint8)  # no n_samples attr: never committed
    with open_writer(path) as w:
        assert w.n_samples == 0
        w.add_source("a")
        w.append(*batch(0, 2))
    with DatasetReader(path) as r:
        check_rows(r, 2)
