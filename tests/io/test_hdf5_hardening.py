"""gannotate.io.hdf5 hardening: optional masks/fit_residual, disk full, kill after add_source,
image checksums, and --no-resume against a file another process holds."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from gannotate.errors import DatasetCorruptError, DatasetError
from gannotate.io.hdf5 import DatasetReader, DatasetWriter

sys.path.insert(0, os.path.dirname(__file__))
from test_hdf5 import S, batch, check_rows, open_writer  # noqa: E402

TESTS = os.path.dirname(__file__)


def masks_for(start: int, b: int) -> np.ndarray:
    return np.broadcast_to((np.arange(start, start + b) % 7 * 30).astype(np.uint8)[:, None, None], (b, S, S)).copy()


def run_child(code: str) -> subprocess.CompletedProcess:
    prefix = f"import sys, os\nsys.path.insert(0, {TESTS!r})\nfrom test_hdf5 import batch, open_writer\n"
    return subprocess.run([sys.executable, "-c", prefix + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


class TestOptionalDatasets:
    def test_masks_and_fit_residual_round_trip(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 3), masks=masks_for(0, 3), fit_residual=np.arange(3, dtype=np.float32))
            w.append(*batch(3, 2), masks=masks_for(3, 2), fit_residual=np.array([3, 4], np.float32))
        with h5py.File(path, "r") as f:
            assert f["masks"].chunks == (1, S, S) and f["masks"].compression in ("gzip", "lzf")
            assert f["masks"].dtype == np.uint8 and f["fit_residual"].dtype == np.float32
        with DatasetReader(path) as r:
            check_rows(r, 5)
            np.testing.assert_array_equal(np.asarray(r.masks), masks_for(0, 5))
            np.testing.assert_array_equal(r.fit_residual, np.arange(5))

    def test_absent_by_default(self, tmp_path):
        with open_writer(tmp_path / "d.h5") as w:
            w.add_source("a")
            w.append(*batch(0, 2))
        with DatasetReader(tmp_path / "d.h5") as r:
            assert r.masks is None and r.fit_residual is None

    def test_required_once_started_and_only_from_the_start(self, tmp_path):
        with open_writer(tmp_path / "d.h5") as w:
            w.add_source("a")
            w.append(*batch(0, 2), masks=masks_for(0, 2))
            with pytest.raises(DatasetError, match="pass masks="):
                w.append(*batch(2, 2))
            with pytest.raises(DatasetError, match="masks has shape"):
                w.append(*batch(2, 2), masks=masks_for(2, 3))
            with pytest.raises(DatasetError, match="fit_residual given"):
                w.append(*batch(2, 2), masks=masks_for(2, 2), fit_residual=np.zeros(2))
            assert w.n_samples == 2
        with open_writer(tmp_path / "d.h5") as w:  # resume keeps the requirement
            with pytest.raises(DatasetError, match="pass masks="):
                w.append(*batch(2, 1))


class TestDiskFull:
    def test_failing_data_write_commits_nothing(self, tmp_path, monkeypatch):
        path = tmp_path / "d.h5"
        w = open_writer(path)
        w.add_source("a")
        w.append(*batch(0, 3))
        real = h5py.Dataset.__setitem__

        def full(self, key, value):
            if self.name == "/images":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, key, value)

        monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
        with pytest.raises(DatasetError, match="disk full") as e:
            w.append(*batch(3, 3))
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(DatasetError, match="earlier error"):
            w.append(*batch(3, 3))
        monkeypatch.undo()
        w.close()
        with DatasetReader(path) as r:
            check_rows(r, 3)

    def test_failing_flush_before_commit_commits_nothing(self, tmp_path, monkeypatch):
        """The data flush fails: n_samples must not move (before: it was set before the flush)."""
        path = tmp_path / "d.h5"
        w = open_writer(path)
        w.add_source("a")
        w.append(*batch(0, 3))
        monkeypatch.setattr(h5py.File, "flush", lambda self: (_ for _ in ()).throw(
            OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')")))
        with pytest.raises(DatasetError, match="disk full"):
            w.append(*batch(3, 3))
        assert w.attrs["n_samples"] == 3
        monkeypatch.undo()
        w.close()
        with DatasetReader(path) as r:
            check_rows(r, 3)

    def test_low_free_space_refused_before_writing(self, tmp_path, monkeypatch):
        """The realistic path: the disk fills up; the batch is refused before HDF5 sees ENOSPC,
        the writer stays usable and the file stays intact."""
        import gannotate.io.hdf5.writer as h5mod

        path = tmp_path / "d.h5"
        w = open_writer(path)
        w.add_source("a")
        w.append(*batch(0, 3))
        monkeypatch.setattr(h5mod, "_free_bytes", lambda folder: 1000)
        with pytest.raises(DatasetError, match="disk full") as e:
            w.append(*batch(3, 3))
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        monkeypatch.undo()
        w.append(*batch(3, 3))  # space freed: carries on
        w.close()
        with DatasetReader(path) as r:
            check_rows(r, 6)

    def test_real_enospc_in_subprocess(self, tmp_path):
        """A real ENOSPC inside HDF5 (its fd pointed at /dev/full, no root needed): one-line
        DatasetError, and every committed row reads back complete and resumes."""
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full")
        path = tmp_path / "d.h5"
        res = run_child(f"""
            import gannotate.io.hdf5.writer as h5mod
            from gannotate.errors import DatasetError
            w = open_writer({str(path)!r})
            w.add_source("a")
            for start in range(0, 12, 3):
                w.append(*batch(start, 3))
            os.dup2(os.open("/dev/full", os.O_RDWR), int(w._f.id.get_vfd_handle()))
            try:
                w.append(*batch(12, 3))
            except DatasetError as e:
                print("ERR", e, flush=True)
            try:
                w.close()
            except DatasetError as e:
                print("CLOSE", e, flush=True)
            sys.stdout.flush()
            os._exit(0)  # HDF5 2.0 can crash in its own atexit after a failed flush (see module doc)
        """)
        assert res.returncode == 0, res.stderr[-2000:]
        err = [line for line in res.stdout.splitlines() if line.startswith("ERR")]
        assert err and "disk full" in err[0] and str(path) in err[0]
        with DatasetReader(path) as r:
            check_rows(r, 12)
            assert r.verify() == []
        with open_writer(path) as w:
            w.append(*batch(12, 3))
        with DatasetReader(path) as r:
            check_rows(r, 15)


def test_kill_right_after_add_source_then_resume(tmp_path):
    """Before: the first resume failed in add_source with 'bad heap index'."""
    path = tmp_path / "d.h5"
    res = run_child(f"""
        w = open_writer({str(path)!r})
        w.add_source("a")
        w.append(*batch(0, 3))
        w.add_source("b")
        os._exit(0)
    """)
    assert res.returncode == 0, res.stderr
    with open_writer(path) as w:
        assert w.n_samples == 3
        assert w.add_source("c") == 2  # add_source commits at once: "b" survived the kill
        w.append(*batch(3, 3))
    with DatasetReader(path) as r:
        check_rows(r, 6)
        assert r.sources == ["a", "b", "c"]


def test_kill_after_many_add_sources_without_append(tmp_path):
    path = tmp_path / "d.h5"
    res = run_child(f"""
        w = open_writer({str(path)!r})
        w.add_source("a")
        w.append(*batch(0, 3))
        for i in range(300):
            w.add_source("src/" + "x" * 50 + str(i))
        os._exit(0)
    """)
    assert res.returncode == 0, res.stderr
    with open_writer(path) as w:
        for i in range(5):
            w.add_source(f"new{i}")
        w.append(*batch(3, 3))
    with DatasetReader(path) as r:
        check_rows(r, 6)


def flip_image_byte(path, row: int) -> None:
    with h5py.File(path, "a") as f:
        img = f["images"][row]
        img[2, 3, 1] ^= 0xFF
        f["images"][row] = img


class TestChecksums:
    def test_verify_finds_flipped_bytes(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 6))
        with DatasetReader(path) as r:
            assert r.has_checksums and r.verify() == []
        with h5py.File(path, "r") as f:
            assert f["image_crc32"].dtype == np.uint32 and f["image_crc32"].shape == (6,)
        flip_image_byte(path, 1)
        flip_image_byte(path, 4)
        with DatasetReader(path) as r:
            assert r.verify() == [1, 4]
            assert r.verify([0, 2, 3]) == []
            r.images[2]  # intact rows still read
            with pytest.raises(DatasetCorruptError, match="CRC32") as e:
                r.images[1]
            assert e.value.rows == [1]
            with pytest.raises(DatasetCorruptError):
                r.images[0:6]
            with pytest.raises(DatasetCorruptError):
                r.images[[4, 0]]

    def test_resume_checks_the_last_batch(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 3))
            w.append(*batch(3, 3))
        flip_image_byte(path, 5)
        with pytest.raises(DatasetCorruptError, match="rows 5"):
            open_writer(path)

    def test_export_and_preview_cli_exit_4(self, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main

        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 4))
        flip_image_byte(path, 2)
        runner = CliRunner()
        r = runner.invoke(main, ["export", str(path), "--format", "pts", "--out", str(tmp_path / "o")])
        assert r.exit_code == 4, r.output
        assert "corrupt" in r.output and "Traceback" not in r.output
        r = runner.invoke(main, ["preview", str(path), "--out", str(tmp_path / "p.png"), "--n", "4"])
        assert r.exit_code == 4, r.output
        assert "corrupt" in r.output


class TestNoResumeLock:
    HOLDER = """
        w = open_writer({path!r})
        w.add_source("a")
        w.append(*batch(0, 3))
        print("ready", flush=True)
        sys.stdin.readline()
        w.append(*batch(3, 3))
        w.close()
        print("done", flush=True)
    """

    def test_second_writer_refused_first_stays_readable(self, tmp_path):
        path = tmp_path / "d.h5"
        prefix = f"import sys, os\nsys.path.insert(0, {TESTS!r})\nfrom test_hdf5 import batch, open_writer\n"
        code = prefix + textwrap.dedent(self.HOLDER.format(path=str(path)))
        # ``with``: the pipes are closed and the holder waited for, also when an assertion fails
        with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline().strip() == "ready"
            size = path.stat().st_size
            with pytest.raises(DatasetError, match="in use by another run") as e:
                open_writer(path, resume=False)
            assert str(path) in str(e.value)
            assert path.stat().st_size == size  # not truncated
            with pytest.raises(DatasetError, match="in use by another run"):
                open_writer(path)  # resume is refused with the same words
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
        with DatasetReader(path) as r:
            check_rows(r, 6)
        with open_writer(path, resume=False) as w:  # free again: starts over
            assert w.n_samples == 0

    def test_reader_open_blocks_truncation(self, tmp_path):
        path = tmp_path / "d.h5"
        with open_writer(path) as w:
            w.add_source("a")
            w.append(*batch(0, 3))
        res = None
        with DatasetReader(path):
            res = run_child(f"""
                from gannotate.errors import DatasetError
                try:
                    open_writer({str(path)!r}, resume=False)
                except DatasetError as e:
                    print("REFUSED", e)
            """)
        assert "REFUSED" in res.stdout and "in use by another run" in res.stdout, res.stderr
        with DatasetReader(path) as r:
            check_rows(r, 3)
