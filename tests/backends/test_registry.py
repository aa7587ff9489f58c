"""The backend registry: ``augment --backend`` offers what is registered, local and Ray are two entries of it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig
from gannotate.backends import Backend, LocalBackend, RayBackend, get_backend, list_backends, unknown_options
from gannotate.cli import main
from gannotate.errors import GannotateError


def test_local_and_ray_are_registered():
    assert list_backends()[:2] == ["local", "ray"]
    assert isinstance(get_backend("local"), LocalBackend) and isinstance(get_backend("ray"), RayBackend)
    assert all(isinstance(get_backend(n), Backend) for n in list_backends())


def test_unknown_backend_fails_with_the_list():
    with pytest.raises(GannotateError, match=r"unknown backend 'spark'; choose one of \['local', 'ray'"):
        get_backend("spark")


def test_cli_choices_are_the_registry():
    res = CliRunner().invoke(main, ["augment", "--backend", "spark", "-q"])
    assert res.exit_code == 2
    for name in list_backends():
        assert f"'{name}'" in res.output
    param = next(p for p in main.commands["augment"].params if p.name == "backend")
    assert list(param.type.choices) == list_backends()


def test_options_belong_to_their_backend():
    assert unknown_options(get_backend("local"), {"address": "auto", "shards": None}) == ["address"]
    assert unknown_options(get_backend("ray"), {"address": "auto", "shards": 2}) == []


def test_ray_refuses_a_hand_made_shard(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(GannotateError, match="--shards N"):
        get_backend("ray").check(AugmentConfig(out=tmp_path / "o", shard=(0, 2)))
    get_backend("local").check(AugmentConfig(out=tmp_path / "o", shard=(0, 2)))  # a local run takes one shard


def test_the_docs_example_backend_runs(tmp_path, face_folder, monkeypatch):
    """docs/augment.md's example backend, as written there: its dataset equals a local run's, pair for pair."""
    import re
    from pathlib import Path

    import numpy as np

    import gannotate.backends.base as base
    from gannotate.augment import run_augment
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.plan import PlanConfig
    from gannotate.render import RendererSpec

    text = (Path(__file__).resolve().parents[2] / "docs" / "augment.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# gannotate/backends/serial_shards\.py.*?)```", text, re.S).group(1)
    monkeypatch.setattr(base, "register_backend", lambda cls: cls)  # run it without adding it to the CLI's registry
    ns: dict = {}
    exec(compile(code, "docs/augment.md", "exec"), ns)
    backend = ns["SerialShards"]()
    assert isinstance(backend, Backend) and backend.options == ("shards",)
    cfg = dict(input=face_folder, plan=PlanConfig(n=2, seed=1, quality=(), min_quality=0.0), size=32,
               renderer=RendererSpec("warp"), formats=("h5",))
    res = backend.run(AugmentConfig(out=tmp_path / "ex", **cfg), shards=2)
    run_augment(AugmentConfig(out=tmp_path / "local", **cfg))
    assert res.n_total == 8 and not res.failures

    def rows(path):
        with DatasetReader(path / "dataset.h5") as r:
            keys = [(r.sources[s], t) for s, t in zip(r.source_index, r.target_index)]
            order = sorted(range(len(keys)), key=keys.__getitem__)
            return [keys[i] for i in order], np.asarray(r.images)[order], np.asarray(r.landmarks)[order]

    (ka, ia, la), (kb, ib, lb) = rows(tmp_path / "ex"), rows(tmp_path / "local")
    assert ka == kb and np.array_equal(ia, ib) and np.array_equal(la, lb)
