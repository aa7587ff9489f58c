"""Package boundary: shape_model stands alone (no gannotate, no torch)."""

from __future__ import annotations

import subprocess
import sys


def test_shape_model_imports_neither_gannotate_nor_torch():
    code = (
        "import sys, shape_model, shape_model.shipped, shape_model.datasets; "
        "m = shape_model.load_model(); "
        "bad = [n for n in sys.modules if n.split('.')[0] in ('gannotate', 'torch')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names():
    import shape_model

    for name in shape_model.__all__:
        assert hasattr(shape_model, name), name
