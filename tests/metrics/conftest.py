"""Fixtures shared by the metrics tests."""

import numpy as np
import pytest

H, W, C = 8, 8, 2


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (3, H, W, C)).astype(np.float32)
