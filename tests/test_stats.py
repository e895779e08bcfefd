import numpy as np
import pytest

from companion.stats import bootstrap_ci, paired_difference_ci


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = sum(not bootstrap_ci(rng.normal(1.0, 1.0, size=20), seed=i, n_resamples=999).excludes(1.0)
                  for i in range(200))
    assert 0.85 <= covered / 200 <= 0.99  # a 50% or a 99.99% interval would fall outside


def test_separated_intervals_and_paired_difference():
    a, b = np.arange(10.0) + 100, np.arange(10.0)
    assert bootstrap_ci(a).above(bootstrap_ci(b))
    assert not bootstrap_ci(b).above(bootstrap_ci(a))
    d = paired_difference_ci(a, b)
    assert d.low == d.high == 100.0


def test_degenerate_median_falls_back_to_a_finite_interval():
    ci = bootstrap_ci([0, 0, 0, 1, 1, 0, 0, 1, 0, 0], "median")
    assert np.isfinite(ci.low) and np.isfinite(ci.high) and ci.low <= ci.estimate <= ci.high


@pytest.mark.parametrize("bad, match", [([1.0], "at least 2"), ([[1.0, 2.0]], "one-dimensional"),
                                        ([1.0, np.nan], "NaN")])
def test_bad_samples_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci([1.0, 2.0], statistic="mode")
    with pytest.raises(ValueError, match="same number"):
        paired_difference_ci([1.0, 2.0], [1.0, 2.0, 3.0])
