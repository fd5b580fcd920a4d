"""kerasviz._checks: the numpy argument checks every module shares (no Keras in them)."""

import subprocess
import sys

import numpy as np
import pytest

from kerasviz import _checks


def test_importing_checks_loads_no_keras():
    code = (
        "import sys, kerasviz._checks; "
        "print(any(m.split('.')[0] in ('keras', 'tensorflow') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


class TestCheckImages:
    def test_shape_and_owner(self):
        with pytest.raises(ValueError, match=r"shape \(N, 8, None, 3\) for model 'm'"):
            _checks.check_images(np.zeros((2, 4, 4, 3)), shape=(8, None, 3), owner="model 'm'")
        batch, single = _checks.check_images(np.zeros((2, 8, 5, 3)), shape=(8, None, 3))
        assert batch.shape == (2, 8, 5, 3) and not single
        with pytest.raises(ValueError, match="Model 'm' takes inputs of shape"):
            _checks.check_images(np.zeros((2, 8, 8, 3)), shape=(8, 3), owner="model 'm'")

    def test_value_range(self):
        with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
            _checks.check_images(np.full((4, 4, 3), 255.0), value_range=(0, 1))
        _checks.check_images(np.full((4, 4, 3), 1.0), value_range=(0, 1))


class TestMapsMasksFeatures:
    def test_maps(self):
        maps, single = _checks.check_maps(np.zeros((4, 5)))
        assert maps.shape == (1, 4, 5) and single
        maps, single = _checks.check_maps(np.zeros((4, 5, 1)))  # rank 3: four (5, 1) maps
        assert maps.shape == (4, 5, 1) and not single
        maps, single = _checks.check_maps(np.zeros((2, 4, 5, 1)))
        assert maps.shape == (2, 4, 5) and maps.dtype == np.float32 and not single
        with pytest.raises(ValueError, match="NaN"):
            _checks.check_maps(np.full((3, 3), np.nan))
        with pytest.raises(ValueError, match="empty"):
            _checks.check_maps(np.zeros((0, 3, 3)))

    def test_masks(self):
        maps = np.zeros((2, 3, 3), np.float32)
        masks = _checks.check_masks(np.ones((2, 3, 3), int), maps)
        assert masks.dtype == bool and masks.all()
        with pytest.raises(ValueError, match=r"images \[1\] are empty"):
            _checks.check_masks(np.stack([np.ones((3, 3)), np.zeros((3, 3))]), maps)
        with pytest.raises(ValueError, match="0/1"):
            _checks.check_masks(np.full((2, 3, 3), 2), maps)
        with pytest.raises(ValueError, match="shape"):
            _checks.check_masks(np.ones((2, 4, 4)), maps)

    def test_features(self):
        assert _checks.check_features([[1, 2], [3, 4]]).dtype == np.float32
        with pytest.raises(ValueError, match=r"\(N, D\)"):
            _checks.check_features(np.zeros(3))
        with pytest.raises(TypeError, match="dtype"):
            _checks.check_features(np.array([["a"]]))
        with pytest.raises(ValueError, match="NaN"):
            _checks.check_features([[np.inf, 0.0]])


class TestNumbers:
    def test_positive_float(self):
        assert _checks.check_positive_float(2, "blur_sigma") == 2.0
        assert _checks.check_positive_float(0, "noise", allow_zero=True) == 0.0
        for bad in (0, -1.0, np.nan, np.inf, True, "1"):
            with pytest.raises(ValueError, match="blur_sigma"):
                _checks.check_positive_float(bad, "blur_sigma")

    def test_fraction(self):
        assert _checks.check_fraction(1, "fraction") == 1.0
        assert _checks.check_fraction(0, "share", low_open=False) == 0.0
        for bad in (0, 1.5, -0.1, True, None):
            with pytest.raises(ValueError, match=r"fraction` in \(0, 1\]"):
                _checks.check_fraction(bad, "fraction")

    def test_choice(self):
        assert _checks.check_choice("logit", "output", ("probability", "logit")) == "logit"
        with pytest.raises(ValueError, match="Did you mean 'logit'"):
            _checks.check_choice("logits", "output", ("probability", "logit"))
        with pytest.raises(ValueError, match="Received: output=3"):
            _checks.check_choice(3, "output", ("probability", "logit"))


class TestCheckTargets:
    def test_forms(self):
        assert _checks.check_targets(None, 2, 3) is None
        np.testing.assert_array_equal(_checks.check_targets(2, 3, 3), [2, 2, 2])
        np.testing.assert_array_equal(_checks.check_targets([0, 2], 2, 3), [0, 2])
        np.testing.assert_array_equal(_checks.check_targets(np.array([1.0]), 1, 3), [1])

    @pytest.mark.parametrize(
        "targets, error, match",
        [
            (3, ValueError, "out of range"),
            (-1, ValueError, "out of range"),
            ([0, 1, 2], ValueError, "one per image"),
            (0.5, TypeError, "int"),
            ("a", TypeError, "int"),
        ],
    )
    def test_bad_targets(self, targets, error, match):
        with pytest.raises(error, match=match):
            _checks.check_targets(targets, 2, 3)

    def test_pair_and_positive_int(self):
        assert _checks.pair(3, "patch") == (3, 3)
        assert _checks.pair((2, 5), "patch") == (2, 5)
        with pytest.raises(ValueError, match="stride"):
            _checks.pair(0, "stride")
        with pytest.raises(ValueError, match="patch"):
            _checks.pair((1, 2, 3), "patch")
        with pytest.raises(TypeError, match="batch_size"):
            _checks.check_positive_int(2.0, "batch_size")
