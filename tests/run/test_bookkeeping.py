"""Run bookkeeping shared by augment, merge, frontalise and the Ray backend: identity, done, manifest, shards."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

import gannotate.augment as augment
import gannotate.run as run
from gannotate.augment import AugmentConfig, run_augment
from gannotate.errors import DatasetError
from gannotate.io.folders import Failure
from gannotate.merge import MERGE_SAME_ATTRS, merge_outputs
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, WarpRenderer
from gannotate.run import (
    IDENTITY_KEYS,
    RESUME_KEYS,
    ShardPlan,
    check_same_settings,
    plan_identity,
    read_manifest,
    read_shard_plan,
    run_status,
    shard_dir,
    sources_digest,
    take_shard,
    write_manifest,
    write_shard_plan,
)


def test_augment_keeps_its_public_names():
    for name in augment.__all__:
        assert hasattr(augment, name), name
    assert augment.find_sources is run.find_sources and augment.check_writable is run.check_writable
    assert augment.DEFAULT_MARGIN == run.DEFAULT_MARGIN == 0.25


class TestIdentity:
    def test_one_list_for_resume_and_merge(self):
        assert MERGE_SAME_ATTRS == IDENTITY_KEYS and RESUME_KEYS == IDENTITY_KEYS + ("shard",)

    def test_plan_text_is_what_existing_datasets_hold(self):
        plan = PlanConfig(n=3, pitch=(-10, 10), seed=4, mirror=False, min_quality=0.0)  # what augment made then
        before = ("n", "yaw", "sampling", "pitch", "roll", "expression", "seed")  # the plan's fields back then
        fields = {k: v for k, v in asdict(plan).items() if k in before}
        old = json.dumps(json.loads(json.dumps(fields)))  # the former augment._jsonable(asdict(plan))
        ident = plan_identity(plan=plan, renderer="warp", model_sha256="x", crop_margin=0.25, scheme="ibug68", image_size=64)
        assert ident["plan"] == old and "n_params" not in ident and set(ident) <= set(IDENTITY_KEYS)

    def test_beyond_45_degrees_the_target_kind_is_part_of_the_plan(self):
        """An old dataset at ±60° (shape-model targets) must not be resumed with 3D ones, nor the reverse."""
        ident = {k: plan_identity(plan=PlanConfig(yaw=(-60, 60), large_yaw=k), renderer="warp", model_sha256="x",
                                  crop_margin=0.25, scheme="ibug68", image_size=64)["plan"] for k in ("3d", "shape-model")}
        assert '"large_yaw": "3d"' in ident["3d"] and ident["3d"] != ident["shape-model"]
        old = json.dumps(json.loads(json.dumps({k: v for k, v in asdict(PlanConfig(yaw=(-60, 60))).items() if k != "large_yaw"})))
        assert old not in ident.values()

    def test_check_names_each_difference(self, tmp_path):
        check_same_settings(tmp_path, {"seed": 0, "shard": "0/1"}, {"seed": "0", "shard": "0/1", "extra": 1})
        with pytest.raises(DatasetError, match=r"seed: 0 there, 1 now.*--no-resume"):
            check_same_settings(tmp_path, {"seed": 0}, {"seed": 1})


    def test_a_plan_difference_names_the_options_not_the_whole_plan(self, tmp_path):
        import json

        from gannotate.plan import PlanConfig

        there = json.dumps(PlanConfig(mirror=False).identity())
        now = json.dumps(PlanConfig(turn="mixed", mirror=False, min_quality=0.5).identity())
        with pytest.raises(DatasetError) as e:
            check_same_settings(tmp_path, {"plan": there}, {"plan": now})
        msg = str(e.value)
        assert 'plan turn: not set (as before the option) there, "mixed" now' in msg
        assert 'plan min_quality: not set (as before the option) there, 0.5 now' in msg
        assert '"sampling"' not in msg  # what agrees is left out


def test_take_shard_partitions_in_key_order():
    keys = [f"k{i}" for i in range(7)]
    parts = [take_shard(keys, (i, 3)) for i in range(3)]  # any sequence works: a Source list in practice
    assert sorted(sum(parts, [])) == keys and parts[1] == ["k1", "k4"]
    with pytest.raises(Exception, match="0 <= i < n"):
        take_shard(keys, (3, 3))


class TestRunStatus:
    def test_new_partial_done(self, tmp_path, face_folder):
        out = tmp_path / "o"
        assert run_status(out).state == "new"
        cfg = AugmentConfig(out=out, input=face_folder, plan=PlanConfig(n=2), size=64, batch_size=2, renderer=RendererSpec("warp"))

        class Crashing(WarpRenderer):
            calls = 0

            def render_full(self, *a):  # type: ignore[override]
                type(self).calls += 1
                if type(self).calls == 2:
                    raise KeyboardInterrupt
                return super().render_full(*a)

        with pytest.raises(KeyboardInterrupt):
            run_augment(cfg, renderer=Crashing())
        st = run_status(out)
        assert (st.state, st.n_samples) == ("partial", 2) and "did not finish" in st.reason
        run_augment(cfg)
        keys = sorted(p.stem for p in face_folder.glob("*.pts"))
        st = run_status(out, sources_digest(keys))
        assert st.done and st.n_samples == 8 and st.attrs["seed"] == 0
        assert run_status(out, sources_digest(keys[:2])).state == "partial"  # the inputs changed since

    def test_merge_refuses_an_unfinished_shard(self, tmp_path, face_folder):
        s0 = tmp_path / "s0"
        run_augment(AugmentConfig(out=s0, input=face_folder, plan=PlanConfig(n=1), size=64, shard=(0, 2)))
        man = read_manifest(s0)
        man["complete"] = False
        (s0 / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(DatasetError, match="not finished"):
            merge_outputs(tmp_path / "m", [s0])


def test_manifest_round_trip(tmp_path):
    path = write_manifest(tmp_path, command="c", seed=1, counts={"samples_total": 0}, failures=[Failure("a.png", "bad")],
                          config={"p": Path("x"), "t": (1, 2)}, complete=False, elapsed_s=1.23456, extra_key="v")
    man = read_manifest(tmp_path)
    assert path.name == "manifest.json" and man["complete"] is False and man["failures"] == [{"path": "a.png", "reason": "bad"}]
    assert man["config"] == {"p": "x", "t": [1, 2]} and man["extra_key"] == "v" and man["elapsed_s"] == 1.235
    assert "numpy" in man["versions"] and list(man)[-1] == "elapsed_s"
    (tmp_path / "manifest.json").write_text("{trunc")
    assert read_manifest(tmp_path) is None


def test_shard_plan_round_trip(tmp_path):
    assert read_shard_plan(tmp_path) is None
    write_shard_plan(tmp_path, ShardPlan(3, {"seed": 2}))
    assert read_shard_plan(tmp_path) == ShardPlan(3, {"seed": 2})
    assert shard_dir(tmp_path, 2) == tmp_path / "shards" / "2"
