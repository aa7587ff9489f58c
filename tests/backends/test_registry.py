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
