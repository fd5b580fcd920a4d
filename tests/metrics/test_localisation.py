"""kerasviz.metrics.localisation and baselines: pointing game, energy in mask, top-k IoU on
hand-made maps and masks."""

import numpy as np
import pytest

from kerasviz import metrics

H, W, C = 8, 8, 2


class TestLocalisation:
    def test_pointing_game_known_hits(self):
        maps = np.zeros((3, 4, 4), np.float32)
        masks = np.zeros((3, 4, 4), bool)
        masks[:, :2, :2] = True
        maps[0, 1, 1] = 5.0  # maximum inside
        maps[1, 3, 3] = 5.0  # maximum outside
        maps[2, 0, 0] = maps[2, 3, 3] = 5.0  # two tied maxima, one inside -> half a hit
        np.testing.assert_allclose(metrics.pointing_game(maps, masks), [1.0, 0.0, 0.5])

    def test_flat_map_scores_the_mask_area_and_tolerance_grows_the_mask(self):
        mask = np.zeros((4, 4), bool)
        mask[:2, :2] = True
        assert metrics.pointing_game(np.ones((4, 4)), mask) == pytest.approx(0.25)
        near = np.zeros((4, 4))
        near[2, 1] = 1.0  # one pixel below the mask
        assert metrics.pointing_game(near, mask) == 0.0
        assert metrics.pointing_game(near, mask, tolerance=1) == 1.0

    def test_energy_in_mask_known_shares(self):
        maps = np.array(
            [[[1.0, 3.0], [0.0, -2.0]], [[2.0, 2.0], [2.0, 2.0]], [[-1.0, -1.0], [-1.0, 0.0]]],
            np.float32,
        )
        masks = np.array([[[0, 1], [1, 1]], [[1, 0], [0, 0]], [[1, 1], [1, 1]]])
        got = metrics.energy_in_mask(maps, masks)
        np.testing.assert_allclose(got[:2], [0.75, 0.25])
        assert np.isnan(got[2])  # no positive attribution: undefined

    def test_top_k_iou_known_values(self):
        m = np.arange(16, dtype=np.float32).reshape(4, 4)  # best pixels: bottom row
        mask = np.zeros((4, 4), bool)
        mask[3, :] = True
        assert metrics.top_k_iou(m, mask) == pytest.approx(1.0)  # k = mask area
        assert metrics.top_k_iou(m, mask, fraction=0.5) == pytest.approx(4 / 8)
        assert metrics.top_k_iou(-m, mask) == pytest.approx(0.0)
        mask2 = np.zeros((4, 4), bool)
        mask2[3, 2:] = True
        assert metrics.top_k_iou(m, mask2, fraction=0.25) == pytest.approx(2 / 4)

    def test_bad_inputs(self):
        maps = np.zeros((2, 4, 4))
        with pytest.raises(ValueError, match="empty"):
            metrics.pointing_game(maps, np.zeros((2, 4, 4), bool))
        ok = np.ones((2, 4, 4), bool)
        ok[1] = False
        with pytest.raises(ValueError, match=r"images \[1\] are empty"):
            metrics.energy_in_mask(maps, ok)
        with pytest.raises(ValueError, match="masks"):
            metrics.top_k_iou(maps, np.ones((2, 4, 5), bool))
        with pytest.raises(ValueError, match="0/1"):
            metrics.energy_in_mask(maps, np.full((2, 4, 4), 2))
        with pytest.raises(ValueError, match="fraction"):
            metrics.top_k_iou(maps, np.ones((2, 4, 4), bool), fraction=1.5)
        with pytest.raises(ValueError, match="explanations"):
            metrics.pointing_game(np.zeros(4), np.ones(4, bool))
        with pytest.raises(ValueError, match="NaN"):
            metrics.pointing_game(np.full((4, 4), np.nan), np.ones((4, 4), bool))
