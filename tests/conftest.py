import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import bmxnet  # noqa: E402,F401  (registers the operators)
from bmxnet import _library  # noqa: E402


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture(params=["portable", "avx2", "avx512", "neon"])
def isa(request, monkeypatch):
    """Forces a kernel path (never above the CPU's) for the test, then restores the best."""
    monkeypatch.setenv("BMXNET_ISA", request.param)
    _library.refresh_isa()
    if _library.active_isa() != request.param:
        monkeypatch.delenv("BMXNET_ISA")
        _library.refresh_isa()
        pytest.skip("this CPU has no " + request.param)
    yield request.param
    monkeypatch.delenv("BMXNET_ISA")
    _library.refresh_isa()
