"""Fixtures for the shape-model tests: the shipped model (loads without ../shared)."""

from __future__ import annotations

import pytest

from shape_model.build import load_model


@pytest.fixture(scope="session")
def model():
    return load_model()
