"""``augment --format``: one registry of output formats is the source of the CLI's choices, default and help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig
from gannotate.cli import main
from gannotate.errors import GannotateError
from gannotate.run.outputs import formats_help, get_output_format, list_output_formats, parse_formats


def _format_param():
    return next(p for p in main.commands["augment"].params if p.name == "formats")


def test_cli_format_is_the_registry():
    param = _format_param()
    assert param.default == ",".join(list_output_formats()) == "h5,pts"
    assert param.help == formats_help()
    for name in list_output_formats():
        assert name in param.help


def test_required_format_always_comes_first():
    assert parse_formats("pts") == ("h5", "pts") and parse_formats("pts,h5,pts") == ("h5", "pts")
    assert get_output_format("h5").required and get_output_format("pts").folder == "images/"


@pytest.mark.parametrize("value", ["tiff", "", "h5,tiff"])
def test_unknown_format_lists_the_choices(value):
    with pytest.raises(GannotateError, match="choose a comma list of h5, pts"):
        parse_formats(value)
    res = CliRunner().invoke(main, ["augment", "--format", value, "-q"])
    assert res.exit_code == 2 and "h5, pts" in res.output


def test_config_checks_against_the_registry(tmp_path):
    with pytest.raises(GannotateError, match="choose from h5, pts"):
        AugmentConfig(out=tmp_path, formats=("h5", "tiff"))
