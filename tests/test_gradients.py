import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import structures_and_dims

from hcl_stats.estimators import masked_loss


def _random_problem(s, dims, seed):
    gen = np.random.default_rng(seed)
    mask = s.mask(dims)
    w = np.where(mask, gen.standard_normal(mask.shape), 0.0)
    a = gen.standard_normal((sum(dims), sum(dims)))
    return w, (a + a.T) / 2, mask


@settings(max_examples=25)
@given(structures_and_dims(max_views=3, max_rank=2), st.integers(0, 2**32 - 1))
def test_gradient_matches_central_differences(sd, seed):
    s, dims = sd
    w, s_w, mask = _random_problem(s, dims, seed)
    _, grad = masked_loss(w, s_w, mask)
    h = 1e-6
    fd = np.zeros_like(w)
    for i, j in zip(*np.nonzero(mask), strict=True):
        e = np.zeros_like(w)
        e[i, j] = h
        fd[i, j] = (masked_loss(w + e, s_w, mask)[0] - masked_loss(w - e, s_w, mask)[0]) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))
    assert np.all(grad[~mask] == 0)


@settings(max_examples=25)
@given(structures_and_dims(max_views=3), st.integers(0, 2**32 - 1))
def test_loss_equals_the_residual_form(sd, seed):
    s, dims = sd
    w, s_w, mask = _random_problem(s, dims, seed)
    loss, _ = masked_loss(w, s_w, mask)
    direct = 0.5 * np.linalg.norm(w @ w.T - s_w) ** 2
    assert loss == pytest.approx(direct, rel=1e-9)


def test_loss_is_accurate_near_an_exact_fit():
    gen = np.random.default_rng(0)
    w = gen.standard_normal((50, 4)) * 100
    mask = np.ones_like(w, dtype=bool)
    eps = 1e-9 * gen.standard_normal(w.shape)
    loss, grad = masked_loss(w + eps, w @ w.T, mask)
    direct = 0.5 * np.linalg.norm((w + eps) @ (w + eps).T - w @ w.T) ** 2
    assert loss == pytest.approx(direct, rel=1e-6)
    # the loss is invariant to a rotation of the factor
    q, _ = np.linalg.qr(gen.standard_normal((4, 4)))
    assert masked_loss(w @ q, w @ w.T, mask)[0] == pytest.approx(0.0, abs=1e-12 * np.abs(w).max() ** 4)


def test_quartic_step_is_the_exact_line_minimiser(rng):
    """The step minimises the masked loss along P (compared with a fine grid)."""
    from hcl_stats.estimators.refine import _quartic_step

    d, k = 7, 3
    a = rng.standard_normal((d, d))
    s_w = a @ a.T
    w = rng.standard_normal((d, k))
    p = -(w @ (w.T @ w) - s_w @ w)  # steepest descent: a descent direction
    t = _quartic_step(w, p, s_w @ w, s_w @ p, w.T @ w, float(np.sum(p * (s_w @ w))))
    mask = np.ones((d, k), dtype=bool)

    def loss(tt):
        return masked_loss(w + tt * p, s_w, mask)[0]

    grid = np.linspace(0.0, 4.0 * t, 4001)
    best = grid[int(np.argmin([loss(g) for g in grid]))]
    assert t > 0.0
    assert loss(t) <= loss(best) + 1e-9 * abs(loss(best))


def test_line_search_cubic_roots_are_numpy_roots_bit_for_bit(rng):
    """The line search's companion-matrix roots equal ``numpy.roots`` exactly."""
    from hcl_stats.estimators import refine

    for i in range(500):
        coef = rng.standard_normal(4) * 10.0 ** rng.uniform(-6, 6, 4)
        if i % 50 == 0:
            coef[3] = 0.0  # a root at t = 0: the generic route
        got = refine._cubic_roots(*(float(c) for c in coef))
        np.testing.assert_array_equal(got, np.roots(coef))
    for route in (lambda c: np.roots(c), lambda c: refine._cubic_roots(*c)):
        with pytest.raises(np.linalg.LinAlgError):  # as before: non-finite input
            route([1.0, float("nan"), 0.0, 1.0])
