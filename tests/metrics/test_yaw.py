"""One |yaw|-bin table: edges, merged open bins, labels and per-bin summaries."""

from __future__ import annotations

import math

import numpy as np

from gannotate.metrics.yaw import LANDMARK_YAW_BINS, SAMPLE_YAW_BINS, YAW_EDGES, bin_labels, bin_masks, by_yaw, yaw_bins


class TestYawBins:
    def test_both_tables_are_cut_from_the_same_edges(self):
        assert bin_labels(LANDMARK_YAW_BINS) == ["0-15", "15-30", "30-45", "45+"]
        assert bin_labels(SAMPLE_YAW_BINS) == ["0-15", "15-30", "30-45", "45-60", "60+"]
        assert LANDMARK_YAW_BINS[:-1] == SAMPLE_YAW_BINS[:3] and LANDMARK_YAW_BINS[-1] == (45.0, math.inf)
        assert [lo for lo, _ in SAMPLE_YAW_BINS] == list(YAW_EDGES)

    def test_bins_cover_every_yaw_once(self):
        yaw = np.array([-90.0, -60.0, -45.0, -0.5, 0.0, 14.999, 15.0, 44.9, 45.0, 59.9, 60.0, 120.0])
        for bins in (LANDMARK_YAW_BINS, SAMPLE_YAW_BINS, yaw_bins(15.0)):
            masks = np.stack(list(bin_masks(yaw, bins).values()))
            assert np.all(masks.sum(0) == 1)  # each |yaw| in exactly one bin
        m = bin_masks(yaw, LANDMARK_YAW_BINS)
        assert m["45+"].tolist() == [True, True, True, False, False, False, False, False, True, True, True, True]

    def test_open_from_must_be_an_edge(self):
        import pytest

        with pytest.raises(ValueError, match="edges"):
            yaw_bins(40.0)

    def test_by_yaw_summarises_each_bin(self):
        yaw = np.array([5.0, -20.0, 50.0, 70.0])
        values = np.array([1.0, 2.0, 3.0, 4.0])
        got = by_yaw(yaw, LANDMARK_YAW_BINS, lambda m: float(values[m].sum()))
        assert got == {"0-15": 1.0, "15-30": 2.0, "30-45": 0.0, "45+": 7.0}

    def test_payoff_reads_the_landmark_bins(self):
        """The payoff's |yaw| ranges are cut from this table (then its own headline groups)."""
        from gannotate.metrics.payoff import RANGES

        assert list(RANGES)[1:5] == bin_labels(LANDMARK_YAW_BINS)
