import pytest

from gannotate.errors import GannotateError
from gannotate.registry import Registry


class TestRegistry:
    def test_register_get_names(self):
        r = Registry("format")
        r.register("b")(len)
        r.register("a")(abs)
        assert r.names() == ["b", "a"] and r.get("a") is abs

    def test_unknown_lists_valid(self):
        r = Registry("format")
        r.register("pts")(len)
        with pytest.raises(GannotateError, match=r"unknown format 'ptz'; choose one of \['pts'\]"):
            r.get("ptz")

    def test_twice_is_refused(self):
        r = Registry("metric")
        r.register("nme")(len)
        with pytest.raises(ValueError, match="already registered"):
            r.register("nme")(abs)
