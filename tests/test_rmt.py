"""The random-matrix formulas of hcl_stats._rmt against closed forms.

The Marchenko-Pastur law of ratio ``g <= 1`` has density
``sqrt((b - x)(x - a)) / (2 pi g x)`` on ``[a, b] = [(1 - sqrt g)^2, (1 + sqrt g)^2]``;
its CDF and first partial moment have elementary antiderivatives, used here
instead of quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from hcl_stats import _rmt
from hcl_stats._linalg import block_offsets
from hcl_stats.exceptions import ValidationError

ratios = st.floats(0.01, 1.0)


def _support(g):
    return (1 - math.sqrt(g)) ** 2, (1 + math.sqrt(g)) ** 2


def _asin(v):
    return math.asin(min(1.0, max(-1.0, v)))


def _cdf(x, g):
    """Closed-form MP CDF: the antiderivative of sqrt((b-x)(x-a))/x over 2 pi g."""
    a, b = _support(g)
    # a + b = 2 (1 + g), sqrt(a b) = 1 - g, b - a = 4 sqrt(g), written exactly
    width = 4 * math.sqrt(g)

    def prim(t):
        t = max(t, 1e-300)
        return (
            math.sqrt(max((b - t) * (t - a), 0.0))
            + (1 + g) * _asin((t - 1 - g) / (width / 2))
            - (1 - g) * _asin(((1 + g) * t - (1 - g) ** 2) / (t * width / 2))
        )

    # prim(a) = -(1 + g) pi / 2 + (1 - g) pi / 2, written exactly (arcsin(-1))
    return (prim(min(max(x, a), b)) + g * math.pi) / (2 * math.pi * g)


def _first_moment(x, g):
    """Closed-form int_a^x t rho(t) dt."""
    a, b = _support(g)

    def prim(t):
        return (t - 1 - g) / 2 * math.sqrt(max((b - t) * (t - a), 0.0)) + 2 * g * _asin(
            (t - 1 - g) / (2 * math.sqrt(g))
        )

    return (prim(min(max(x, a), b)) + g * math.pi) / (
        2 * math.pi * g
    )  # prim(a) = -g pi


@given(ratios)
def test_closed_form_cdf_is_a_distribution_with_mean_one(g):
    a, b = _support(g)
    assert _cdf(a, g) == pytest.approx(0.0, abs=1e-5)
    # at the edges arcsin is evaluated at +-1 up to rounding, where its slope is
    # infinite: 1e-16 of rounding costs about 1e-6 there
    assert _cdf(b, g) == pytest.approx(1.0, abs=1e-5)
    assert _first_moment(b, g) == pytest.approx(1.0, abs=1e-5)


@given(ratios)
def test_mp_median_solves_the_closed_form_cdf(g):
    med = _rmt.mp_median(g)
    a, b = _support(g)
    assert a < med < b
    assert _cdf(med, g) == pytest.approx(0.5, abs=1e-7)


@given(st.floats(1.0, 50.0))
def test_mp_median_beyond_one_is_the_companion_law_scaled(g):
    assert _rmt.mp_median(g) == pytest.approx(g * _rmt.mp_median(1.0 / g), rel=1e-12)


def test_mp_median_of_a_vanishing_ratio_is_one():
    assert _rmt.mp_median(1e-12) == 1.0
    assert _rmt.mp_median(1e-4) == pytest.approx(1.0, abs=0.01)


@given(st.one_of(st.floats(0.01, 0.99), st.just(1.0)), st.floats(0.05, 0.999))
def test_mp_lower_mean_matches_the_closed_form_partial_moment(g, fraction):
    # ratios within about 1e-6 of 1 (but not 1) put a lower edge of about 1e-13
    # under the first grid step, where the trapezoid rule loses 1e-3 (left as is)
    cut = scipy.optimize.brentq(
        lambda x: _cdf(x, g) - fraction, *_support(g), xtol=1e-13
    )
    want = _first_moment(cut, g) / fraction
    assert _rmt.mp_lower_mean(g, fraction) == pytest.approx(want, rel=2e-5, abs=2e-5)


def test_mp_lower_mean_is_below_the_mean_and_increasing():
    vals = [_rmt.mp_lower_mean(0.3, q) for q in (0.1, 0.5, 0.9, 1.0)]
    assert vals == sorted(vals)
    assert vals[-1] == 1.0
    assert vals[0] < 1.0


@given(ratios, st.floats(0.1, 10.0))
def test_edge_is_the_upper_end_of_the_support(g, s2):
    assert _rmt.mp_edge(s2, g) == pytest.approx(s2 * _support(g)[1], rel=1e-14)
    assert _cdf(_rmt.mp_edge(1.0, g), g) == pytest.approx(1.0, abs=1e-5)


@given(ratios, st.floats(1e-3, 50.0))
def test_spike_map_and_its_inverse(g, excess):
    # in noise units, l = 1 + ell; the forward map is l (1 + g / (l - 1))
    ell = math.sqrt(g) + excess  # above the BBP threshold sqrt(g)
    l_pop = 1.0 + ell
    lam = float(_rmt.spike_eigenvalue([ell], 1.0, g)[0])
    assert lam == pytest.approx(l_pop * (1.0 + g / (l_pop - 1.0)), rel=1e-12)
    assert lam > _rmt.mp_edge(1.0, g)
    assert float(_rmt.spike_from_eigenvalue([lam], 1.0, g)[0]) == pytest.approx(
        ell, rel=1e-7
    )
    c2 = float(_rmt.spike_cosine_sq([ell], 1.0, g)[0])
    assert c2 == pytest.approx((1 - g / ell**2) / (1 + g / ell), rel=1e-12)
    assert 0.0 < c2 < 1.0


@given(ratios, st.floats(0.0, 0.999), st.floats(0.1, 10.0))
def test_below_the_bbp_threshold_a_spike_is_invisible(g, frac, s2):
    ell = frac * s2 * math.sqrt(g)
    assert float(_rmt.spike_eigenvalue([ell], s2, g)[0]) == pytest.approx(
        _rmt.mp_edge(s2, g)
    )
    assert float(_rmt.spike_cosine_sq([ell], s2, g)[0]) == 0.0
    # any eigenvalue at or inside the bulk debiases to zero
    assert (
        float(_rmt.spike_from_eigenvalue([_rmt.mp_edge(s2, g) * (1 - 1e-9)], s2, g)[0])
        == 0.0
    )


@given(st.floats(0.1, 10.0), st.floats(0.0, 5.0))
def test_spike_maths_is_scale_equivariant(s2, ell):
    g = 0.3
    base = _rmt.spike_eigenvalue([ell], 1.0, g)
    assert _rmt.spike_eigenvalue([ell * s2], s2, g) == pytest.approx(
        base * s2, rel=1e-12
    )
    assert _rmt.spike_cosine_sq([ell * s2], s2, g) == pytest.approx(
        _rmt.spike_cosine_sq([ell], 1.0, g), abs=1e-12
    )


def test_debias_spikes_works_on_denoised_eigenvalues():
    ell, c2 = _rmt.debias_spikes(np.array([2.75, 0.1]), 1.0, 50, 100)
    assert ell == pytest.approx([2.0, 0.0])
    assert c2 == pytest.approx([0.7, 0.0])
    same, ones = _rmt.debias_spikes(np.array([2.0, -1.0]), 1.0, 50, None)
    assert same.tolist() == [2.0, 0.0]
    assert ones.tolist() == [1.0, 1.0]


@given(st.integers(1, 10_000), st.integers(2, 10_000))
def test_tracy_widom_scale_two_forms(p, n):
    g = p / n
    want = (1 + math.sqrt(g)) * (1 + 1 / math.sqrt(g)) ** (1 / 3) * n ** (-2 / 3)
    assert _rmt.tracy_widom_scale(p, n) == pytest.approx(want, rel=1e-12)


@given(st.integers(1, 500), st.integers(2, 5000), st.floats(0.1, 10.0))
def test_noise_edge_without_margins_is_the_denoised_mp_edge(p, n, s2):
    got = _rmt.noise_edge(s2, p, n, tw=0.0, margin=0.0)
    assert got == pytest.approx(_rmt.mp_edge(s2, p / n) - s2, rel=1e-12)
    assert _rmt.noise_edge(s2, p, None) == 0.0
    assert _rmt.noise_edge(s2, p, n) > got


def test_mp_noise_var_recovers_sigma2_of_a_white_wishart(rng):
    n, p, s2 = 2000, 200, 1.7
    x = rng.standard_normal((n, p)) * math.sqrt(s2)
    vals = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    assert _rmt.mp_noise_var(vals, 0, n) == pytest.approx(s2, rel=0.01)
    assert _rmt.estimate_noise_var_mp(np.cov(x, rowvar=False), n) == pytest.approx(
        s2, rel=0.02
    )


def test_mp_noise_var_refuses_a_bulk_too_small_for_its_spikes():
    """At n close to K the correction can leave the positive reals: a typed error.

    Nine samples of 18 coordinates with K = 7: one bulk eigenvalue (q - K = 1) is
    left, and six spikes far above the edge would, by the spiked-model formula,
    each absorb about gamma sigma^2 of noise, more than the trace holds.
    """
    vals = np.r_[np.full(6, 50.0), 30.0, 0.2, np.zeros(10)]
    with pytest.raises(ValidationError, match=r"n_samples = 9 is too small .* rank 7"):
        _rmt.mp_noise_var(vals, 7, 9)
    # the same spectrum with many samples is a plain, positive estimate
    assert _rmt.mp_noise_var(np.r_[np.full(6, 50.0), 30.0, np.full(11, 0.2)], 7, 10**6) > 0


def test_noiseless_data_get_the_singular_message_not_the_sample_size_one(rng):
    """Rank-2 data without noise: n = 60 is plenty, the cause is the missing noise."""
    import hcl_stats as hs

    z = rng.standard_normal((60, 2))
    xs = [z @ rng.standard_normal((2, 10)), z @ rng.standard_normal((2, 12))]
    for name in ("masked_shrink", "pca_shrink", "schur_shrink"):
        with pytest.raises(ValidationError, match=r"\(numerically\) singular below the signal "
                                                  r"rank.* noiseless data"):
            hs.estimators.get(name)().fit(xs, structure="all:2")


def test_shrinkage_estimators_name_the_cause_at_n_close_to_k():
    import hcl_stats as hs

    model = hs.HierarchicalFactorModel.random((5, 6, 7), "all:1", rng=0)
    xs = [x[:9] for x in model.sample(200, rng=np.random.default_rng(1)).Xs]
    for name in ("masked_shrink", "pca_shrink", "schur_shrink"):
        with pytest.raises(ValidationError, match="n_samples = 9 is too small"):
            hs.estimators.get(name)().fit(xs, structure="all:1")


@given(st.floats(1e160, 1e300), st.floats(0.01, 4.0))
def test_spike_inverse_survives_eigenvalues_whose_square_overflows(lam, g):
    """lambda / sigma^2 beyond 1e154 (b^2 overflows): the square-free form."""
    ell = _rmt.spike_from_eigenvalue([lam], 1.0, g)[0]
    assert np.isfinite(ell)
    assert _rmt.spike_eigenvalue([ell], 1.0, g)[0] == pytest.approx(lam, rel=1e-12)


@given(st.floats(1.0, 1e3), st.floats(0.01, 4.0), st.floats(1e155, 1e250))
def test_spike_inverse_is_scale_equivariant_where_both_squares_overflow(x, g, s):
    """sigma^2 beyond 1e154: b^2 and sigma^4 are both infinite (disc = inf - inf)."""
    lam = (1.0 + math.sqrt(g)) ** 2 + x  # above the edge, in units of sigma^2
    want = _rmt.spike_from_eigenvalue([lam], 1.0, g)[0]
    with np.errstate(all="raise"):  # no overflow or invalid-value warning either
        got = _rmt.spike_from_eigenvalue([lam * s], s, g)[0]
    assert got == pytest.approx(want * s, rel=1e-12)


def test_noise_rules_are_one_tuple_each():
    from hcl_stats import preprocessing
    from hcl_stats.estimators import _noise

    assert _noise.NOISE_RULES is _rmt.NOISE_RULES
    assert preprocessing.NOISE_RULES is _rmt.RANK_FREE_NOISE_RULES
    assert set(_rmt.NOISE_RULES) < set(_rmt.RANK_FREE_NOISE_RULES)


@given(st.lists(st.integers(0, 50), max_size=6))
def test_block_offsets_slices_the_blocks(dims):
    off = block_offsets(dims)
    assert off.tolist() == [0, *np.cumsum(dims, dtype=int).tolist()]
    assert [int(off[m + 1] - off[m]) for m in range(len(dims))] == dims
