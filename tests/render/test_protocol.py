"""The renderer base class: defaults for every optional capability, a registry that checks what it builds, and
commands whose --renderer help and options come from the registry."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.errors import GannotateError
from gannotate.frontalise import FrontaliseConfig, run_frontalise
from gannotate.io.hdf5 import DatasetReader
from gannotate.plan import PlanConfig
from gannotate.render import (
    GeometricRenderer,
    Renderer,
    RendererOption,
    RendererSpec,
    RenderOutput,
    cli_options,
    list_renderers,
    make_renderer,
    register_renderer,
    renderer_help,
    spec_identity,
)
from gannotate.render import base


class Plain(Renderer):
    """Only what a renderer must have: a name and ``render`` (here: shift the crop by the mean landmark offset)."""

    name = "plain"

    def render(self, images, source_points, target_points):
        out = np.empty_like(images)
        for i, (img, s, t) in enumerate(zip(images, source_points, target_points)):
            dx, dy = np.rint((t - s).mean(0)).astype(int)
            out[i] = np.roll(img, (dy, dx), axis=(0, 1))
        return out


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in the test vanish after it (the registry is process-wide)."""
    monkeypatch.setattr(base._RENDERERS, "_items", dict(base._RENDERERS._items))


class TestDefaults:
    def test_a_plain_renderer_has_every_capability(self):
        r = Plain()
        img = np.zeros((1, 8, 8, 3), np.uint8)
        pts = np.zeros((1, 68, 2), np.float32)
        assert r.prepare(img[0], pts[0]) is None
        full = r.render_full(img, pts, pts)
        assert isinstance(full, RenderOutput) and full.valid is None and full.residual is None
        assert dict(r.dataset_attrs) == {} and r.process_parallel is False
        assert not isinstance(r, GeometricRenderer)

    def test_render_is_required(self):
        class NoRender(Renderer):
            name = "none"

        with pytest.raises(TypeError, match="render"):
            NoRender()

    def test_augment_with_defaults(self, tmp_path):
        """No prepare, no render_full, no attrs: augment renders, writes no masks, and --workers changes nothing."""
        cfg = AugmentConfig(out=tmp_path / "a", plan=PlanConfig(n=2, min_quality=0.0), size=64, formats=("h5",),
                            renderer=RendererSpec("warp"))  # the spec only names the run; the renderer is given
        res = run_augment(cfg, renderer=Plain())
        assert res.n_total == 8 and not res.failures
        with DatasetReader(tmp_path / "a" / "dataset.h5") as r:
            assert r.attrs["renderer"] == "plain" and r.masks is None and r.fit_residual is None
            assert "face_model_licence" not in r.attrs

    def test_frontalise_with_defaults(self, tmp_path):
        res = run_frontalise(FrontaliseConfig(out=tmp_path / "f", yaws=(30.0,), size=32), renderer=Plain())
        assert res.n_faces == 4 and not res.failures and len(res.grids) == 4


class TestRegistry:
    def test_make_renderer_refuses_a_non_renderer(self, scratch_registry):
        class DuckTyped:  # has render, but is no Renderer: its missing capabilities would fail mid-run
            name = "duck"

            def render(self, images, source_points, target_points):
                return images

        register_renderer("duck")(DuckTyped)
        with pytest.raises(GannotateError, match=r"renderer 'duck'.*DuckTyped, not a gannotate.render.Renderer"):
            make_renderer("duck")

    def test_a_registered_subclass_builds(self, scratch_registry):
        register_renderer("plain", options=(RendererOption("shift", "a test option"),), help="test help")(
            lambda shift=None: Plain())
        assert isinstance(make_renderer(RendererSpec.of("plain", shift="1")), Plain)
        assert renderer_help("plain") == "test help"
        assert any(o.name == "shift" for o in cli_options())

    def test_an_option_kind_is_checked(self, scratch_registry):
        with pytest.raises(ValueError, match="kind"):
            register_renderer("odd", options=(RendererOption("x", kind="colour"),))

    def test_spec_identity_matches_the_built_renderer(self, tmp_path):
        from tests.test_render_gan import _tiny

        path = _tiny(tmp_path)
        spec = RendererSpec.of("gan", generator=path)
        assert spec_identity(spec) == {"generator_sha256": make_renderer(spec).dataset_attrs["generator_sha256"]}
        assert spec_identity(RendererSpec("warp")) == {}

    def test_a_paper_generator_claims_no_validity(self, tmp_path):
        from tests.test_render_gan import _tiny

        r = make_renderer(RendererSpec.of("gan", generator=_tiny(tmp_path)))
        img = np.full((1, 32, 32, 3), 128, np.uint8)
        pts = (np.random.default_rng(0).random((1, 68, 2)) * 20 + 6).astype(np.float32)
        full = r.render_full(img, pts, pts)
        assert full.valid is None and full.residual is None
        assert np.array_equal(full.images, r.render(img, pts, pts))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("command", [["augment"], ["frontalise"], ["reenact"], ["evaluate", "progressive"]])
def test_help_lists_every_registered_renderer(command):
    res = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = _flat(res.output)
    for name in list_renderers():
        assert f"{name}: {_flat(renderer_help(name))}" in text
    for opt in cli_options():
        assert f"{opt.flag} " in text and _flat(opt.help) in text


def test_planning_imports_no_renderer():
    code = ("import sys, gannotate.plan, gannotate.targets3d, gannotate.face3d; "
            "print(sorted(m for m in sys.modules if m.startswith('gannotate.render')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
