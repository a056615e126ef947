import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import bmxnet  # noqa: E402,F401  (registers the operators)


@pytest.fixture
def rng():
    return np.random.RandomState(0)
