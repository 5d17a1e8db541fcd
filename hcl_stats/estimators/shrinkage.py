"""Spiked-model-aware estimation: detectability truncation, debiasing, shrinkage.

In the spiked covariance model ``Sigma = sigma^2 I_p + sum_k ell_k u_k u_k^T`` with
``n`` samples and ``gamma = p / n``, a sample eigenvalue above the
Marchenko-Pastur edge ``sigma^2 (1 + sqrt(gamma))^2`` estimates the spike through

    lambda = (ell + sigma^2) (1 + gamma sigma^2 / ell),

and its eigenvector makes a predictable angle with ``u_k``:
``cos^2 = (1 - gamma sigma^4 / ell^2) / (1 + gamma sigma^2 / ell)``. Below the
edge the sample eigenvector carries no information. The Frobenius-optimal
estimate of the Gram ``W W^T = sum_k ell_k u_k u_k^T`` from the sample
eigenvectors keeps the eigenvector ``v_k`` with weight ``eta_k = ell_k cos_k^2``
(Donoho, Gavish and Johnstone, 2018). The estimators here apply this to the
whole covariance (:class:`PCAShrink`), to every step of the Schur-complement
recursion with that step's own effective dimension (:class:`SchurShrink`), and
to the blocks of the masked refinement (:class:`MaskedShrink`). The derivation
and its assumptions are in ``docs/shrinkage.md``.

Heteroscedastic views (``noise_rule='per_view'`` or a known vector) are handled by
whitening: the covariance is rescaled to ``Psi^{-1/2} S Psi^{-1/2}`` (noise
``I``), shrunk there and mapped back with ``Psi^{1/2}``. The shrinkage is then
optimal for the whitened Gram loss, not for the raw one (see the docs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _rmt
from .._linalg import block_offsets, one_blas_thread, top_eigh
from .._rmt import leaked_directions, mp_noise_var
from .._validation import check_bool, check_int, check_real
from ..exceptions import BlockDroppedWarning
from ..identifiability import require_schur_step
from ..model import noise_diagonal
from ..structure import Structure, format_block
from ._base import Estimator, Problem, RawFit
from ._block_shrink import shrink_blocks
from ._noise import check_noise_option
from .refine import MaskedGradient

__all__ = [
    "MaskedShrink",
    "PCAShrink",
    "SchurShrink",
    "condition_on_outside",
    "debias_eigenvalues",
    "mp_edge",
    "mp_noise_var",
    "schur_shrink_loadings",
    "shrink_blocks",
    "shrink_eigenvalues",
    "shrunk_factor",
    "spike_cosine_sq",
    "spike_eigenvalue",
]


# --------------------------------------------------------------------- formulas
def _check_gamma_sigma(noise_var: float, gamma: float) -> tuple[float, float]:
    s2 = check_real(noise_var, "noise_var", low=0.0, low_open=True)
    g = check_real(gamma, "gamma", low=0.0)
    return s2, g


def mp_edge(noise_var: float, gamma: float) -> float:
    """Upper Marchenko-Pastur edge ``sigma^2 (1 + sqrt(gamma))^2``.

    Parameters
    ----------
    noise_var : float
        Noise variance ``sigma^2 > 0``.
    gamma : float
        Aspect ratio ``p / n >= 0``.

    Returns
    -------
    float
        The limit of the largest noise eigenvalue; sample eigenvalues at or below
        it are indistinguishable from noise (the BBP detectability threshold).

    Examples
    --------
    >>> mp_edge(1.0, 0.25)
    2.25
    """
    s2, g = _check_gamma_sigma(noise_var, gamma)
    return _rmt.mp_edge(s2, g)


def spike_eigenvalue(spike: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Limit of the sample eigenvalue of a spike ``ell`` (the forward map).

    ``lambda(ell) = (ell + sigma^2) (1 + gamma sigma^2 / ell)`` for
    ``ell > sigma^2 sqrt(gamma)`` (the BBP threshold), else the edge
    :func:`mp_edge`.

    Parameters
    ----------
    spike : array_like of shape (k,)
        Population spikes ``ell >= 0`` (eigenvalues of ``W W^T``).
    noise_var, gamma : float
        ``sigma^2 > 0`` and ``p / n >= 0``.

    Returns
    -------
    ndarray of shape (k,)

    Examples
    --------
    >>> float(spike_eigenvalue([2.0], 1.0, 0.5)[0])  # (2 + 1)(1 + 0.25)
    3.75
    """
    s2, g = _check_gamma_sigma(noise_var, gamma)
    return _rmt.spike_eigenvalue(spike, s2, g)


def debias_eigenvalues(eigenvalues: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Invert :func:`spike_eigenvalue`: estimate the spikes ``ell`` from ``lambda``.

    With ``x = lambda / sigma^2`` and ``b = x - 1 - gamma``, the spike is the larger
    root of ``t^2 - b t + gamma = 0`` (``t = ell / sigma^2``):
    ``ell = sigma^2 (b + sqrt(b^2 - 4 gamma)) / 2``. Eigenvalues at or below the
    Marchenko-Pastur edge ``sigma^2 (1 + sqrt(gamma))^2`` give ``ell = 0``
    (detectability-aware truncation).

    Parameters
    ----------
    eigenvalues : array_like of shape (k,)
        Sample eigenvalues ``lambda`` of the (noisy, not denoised) covariance.
    noise_var, gamma : float
        ``sigma^2 > 0`` and ``p / n >= 0``.

    Returns
    -------
    ndarray of shape (k,)
        Debiased spikes; ``lambda - sigma^2`` when ``gamma = 0``.

    Examples
    --------
    >>> float(debias_eigenvalues([3.75], 1.0, 0.5)[0])
    2.0
    """
    s2, g = _check_gamma_sigma(noise_var, gamma)
    return _rmt.spike_from_eigenvalue(eigenvalues, s2, g)


def spike_cosine_sq(spike: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Limit of ``<v, u>^2`` between sample and population eigenvectors of a spike.

    ``c^2 = (1 - gamma sigma^4 / ell^2) / (1 + gamma sigma^2 / ell)`` above the
    BBP threshold ``ell > sigma^2 sqrt(gamma)``, else 0.

    Parameters
    ----------
    spike : array_like of shape (k,)
        Population spikes ``ell >= 0``.
    noise_var, gamma : float

    Returns
    -------
    ndarray of shape (k,)
        In ``[0, 1]``; equal to 1 when ``gamma = 0`` and ``ell > 0``.

    Examples
    --------
    >>> float(spike_cosine_sq([2.0], 1.0, 0.5)[0])  # (1 - 1/8) / (1 + 1/4)
    0.7
    """
    s2, g = _check_gamma_sigma(noise_var, gamma)
    return _rmt.spike_cosine_sq(spike, s2, g)


def shrink_eigenvalues(eigenvalues: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Frobenius-optimal weights ``eta = ell c^2`` for the Gram ``W W^T``.

    Composes :func:`debias_eigenvalues` and :func:`spike_cosine_sq`. In noise units
    (``t = ell / sigma^2``) the weight is ``sigma^2 (t^2 - gamma) / (t + gamma)``.

    Parameters
    ----------
    eigenvalues : array_like of shape (k,)
        Sample eigenvalues ``lambda`` of the noisy covariance.
    noise_var, gamma : float

    Returns
    -------
    ndarray of shape (k,)
        Weights ``eta >= 0`` such that ``sum_k eta_k v_k v_k^T`` estimates
        ``W W^T``; exactly ``lambda - sigma^2`` when ``gamma = 0`` (no shrinkage
        in the noiseless / population limit), 0 at or below the edge.

    Examples
    --------
    >>> float(shrink_eigenvalues([3.75], 1.0, 0.5)[0])  # 2 * 0.7
    1.4
    """
    ell = debias_eigenvalues(eigenvalues, noise_var, gamma)
    return ell * spike_cosine_sq(ell, noise_var, gamma)


def shrunk_factor(
    cov: ArrayLike, rank: int, noise_var: float, n_samples: int | None,
    dim: int | None = None,
) -> tuple[NDArray, dict[str, object]]:
    """Shrunk rank-``rank`` factor ``F = V diag(eta)^{1/2}`` of a noisy covariance.

    Parameters
    ----------
    cov : array_like of shape (p, p)
        Effective covariance ``Sigma_eff = G + sigma^2 I_p`` (signal plus noise, not
        denoised), estimated from ``n_samples`` observations.
    rank : int
        Number of leading eigenpairs considered.
    noise_var : float
        Noise variance ``sigma^2`` of ``cov``.
    n_samples : int or None
        Effective sample size; None means a population matrix (``gamma = 0``: no
        shrinkage, ``eta = lambda - sigma^2`` clipped at 0).
    dim : int, optional
        The data's dimension for ``gamma = dim / n`` when ``cov`` is the covariance
        in an orthonormal basis of the data's row space (sample-space path: same
        non-zero spectrum, fewer coordinates); default ``p``.

    Returns
    -------
    factor : ndarray of shape (p, rank)
        Columns with ``eta = 0`` (undetectable) are zero.
    info : dict
        ``gamma``, ``edge``, ``eigenvalues``, ``spikes`` (debiased), ``weights``
        (``eta``) and ``n_detected``.

    Examples
    --------
    At the population level (``n_samples=None``) nothing is shrunk: ``F F^T`` is the
    denoised rank-``K`` part:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators.shrinkage import shrunk_factor
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=0.5,
    ...                                      rng=0)
    >>> f, info = shrunk_factor(m.covariance(), 3, 0.5, None)
    >>> bool(np.allclose(f @ f.T, m.loadings @ m.loadings.T)), info["n_detected"]
    (True, 3)
    """
    cov = np.asarray(cov, dtype=float)
    p = cov.shape[0]
    k = min(check_int(rank, "rank", minimum=0), p)
    vals, vecs = top_eigh(cov, k)
    gamma = 0.0 if n_samples is None else (p if dim is None else dim) / n_samples
    if gamma == 0.0:
        ell = np.clip(vals - noise_var, 0.0, None)
        eta = ell
    else:
        ell = debias_eigenvalues(vals, noise_var, gamma)
        eta = ell * spike_cosine_sq(ell, noise_var, gamma)
    factor = np.zeros((p, rank))
    factor[:, :k] = vecs * np.sqrt(eta)
    info = {
        "gamma": gamma,
        "edge": mp_edge(noise_var, gamma),
        "eigenvalues": [float(v) for v in vals],
        "spikes": [float(v) for v in ell],
        "weights": [float(v) for v in eta],
        "n_detected": int(np.sum(eta > 0)),
    }
    return factor, info


# ------------------------------------------------------------- noise variance



def _noise_for_shrinkage(problem: Problem):
    """``problem.noise_variance()``, MP-corrected when estimated with ``n`` known."""
    structure, n_samples = problem.structure, problem.n_samples
    if not isinstance(problem.noise, str) or n_samples is None:
        return problem.noise_variance()
    if problem.noise == "scalar":
        vals = problem.spectrum()
        return mp_noise_var(vals, structure.total_rank, n_samples)
    out = np.empty(len(problem.dims))
    base = problem.noise_variance()  # validates d_m > k_m
    for m in range(len(problem.dims)):
        vals = problem.spectrum(m)
        km = structure.view_rank(m)
        out[m] = mp_noise_var(vals, km, n_samples) if km else float(base[m])
    return out


# ------------------------------------------------------------------ whitening
def _whiten(cov: NDArray, dims, noise) -> tuple[NDArray, NDArray]:
    """``Psi^{-1/2} cov Psi^{-1/2}`` and the root ``psi^{1/2}`` (shape (d,))."""
    root = np.sqrt(noise_diagonal(noise, dims))
    return cov / root[:, None] / root[None, :], root


# ----------------------------------------------------------------- estimators
@dataclass(frozen=True, kw_only=True)
class PCAShrink(Estimator):
    """Structure-blind PCA with detectability truncation and optimal shrinkage.

    ``W = V_K diag(eta)^{1/2}`` with ``V_K`` the top-``K`` sample eigenvectors and
    ``eta_k = ell_k c_k^2`` (:func:`shrink_eigenvalues`, ``gamma = d / n``):
    eigenvalues below the Marchenko-Pastur edge are dropped, the others are
    debiased and shrunk by the squared cosine of the eigenvector angle.

    Parameters
    ----------
    noise_rule : {'scalar', 'per_view'} or float or sequence of float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`. Per-view noise is handled by
        whitening (module docstring).

    Notes
    -----
    Deterministic; ``rng`` is ignored. Loadings are dense (``structured=False``):
    identified up to one global ``K x K`` rotation. With ``n_samples=None``
    (population covariance) ``gamma = 0`` and the estimate equals
    :class:`~hcl_stats.estimators.NaivePCA`. ``diagnostics.extra`` records
    ``gamma``, the ``edge``, the ``spikes``, the ``weights`` and ``n_detected``.

    References
    ----------
    Donoho, Gavish and Johnstone (2018), "Optimal shrinkage of eigenvalues in the
    spiked covariance model", Ann. Statist. 46(4), 1742-1778.
    Paul (2007), "Asymptotics of sample eigenstructure for a large dimensional
    spiked covariance model", Statist. Sinica 17, 1617-1642.

    Examples
    --------
    >>> import hcl_stats as hs, numpy as np
    >>> model = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> fit = hs.estimators.PCAShrink().fit_covariance(
    ...     model.covariance(), dims=(4, 5), structure=model.structure)
    >>> bool(np.allclose(fit.loadings @ fit.loadings.T, model.signal_covariance()))
    True
    """

    name: ClassVar[str] = "pca_shrink"
    structured: ClassVar[bool] = False
    # the top eigenpairs of the (whitened) covariance in a row-space basis are the
    # full covariance's; gamma takes the data's d (per-view whitening commutes
    # with the per-view bases)
    samples_path: ClassVar[bool] = True

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        noise = _noise_for_shrinkage(problem)
        white, root = _whiten(problem.cov, problem.dims, noise)
        f, info = shrunk_factor(white, problem.structure.total_rank, 1.0, problem.n_samples,
                                dim=sum(problem.full_dims))
        info["noise_rule"] = _rule(problem.noise)
        return RawFit(f * root[:, None], noise, problem.structure, extra=info)


def _rule(noise: Any) -> str:
    """Noise rule; estimated rules are Marchenko-Pastur corrected when n is known."""
    return f"{noise} (MP-corrected)" if isinstance(noise, str) else "known"


def schur_shrink_loadings(
    cov: NDArray[np.float64],
    dims: tuple[int, ...],
    structure: Structure,
    n_samples: int | None,
    leak_z: float | None = 4.0,
    leak_share: float = 0.0,
    full_dims: tuple[int, ...] | None = None,
) -> tuple[NDArray[np.float64], dict[str, dict[str, object]]]:
    """Schur-complement recursion with per-step detectability and shrinkage.

    ``cov`` is whitened (noise ``I``). For each block ``S`` (increasing ``|S|``),
    with ``O`` the views outside ``S`` and ``k_O`` the total rank of the blocks
    meeting ``O``:

    1. *Conditioning.* The top-``k_O`` eigenpairs ``(lambda_j, v_j)`` of
       ``cov[O, O]`` are debiased with ``gamma_O = d_O / n``; the detectable ones
       give ``C_S = cov[S, S] - sum_j cov[S, O] v_j v_j^T cov[O, S] / (rho_j^2
       lambda_j)`` (:func:`condition_on_outside`; ``rho_j^2 lambda_j = ell_j c_j^2
       (1 + gamma_O / ell_j)^2`` is the signal variance that ``cov[S, O] v_j``
       carries, so the signal of the blocks meeting ``O`` is removed without
       bias to first order, asymptotically; a noise term of order ``1 / n`` per
       coordinate is left).
    2. *Joint shrinkage.* ``C_S`` is an effective covariance of dimension
       ``d_S`` with noise ``I`` and ``n`` samples, whose spikes are the blocks
       ``T`` contained in ``S``. Its top ``R_S = sum_{T in S} r_T`` eigenpairs are
       shrunk with ``gamma_S = d_S / n``: ``G_S^+ = sum_k eta_k v_k v_k^T``.
    3. *Separation.* ``W^S`` is the top-``r_S`` factor of
       ``G_S^+ - sum_{T proper subset of S} W^T W^T^T`` (negative part clipped).

    Returns the loadings (whitened scale) and, per block, the diagnostics of
    step 2 (``gamma``, ``edge``, ``n_detected``, ...). ``full_dims`` are the
    data's ``d_m`` when ``cov`` is in the per-view row-space bases of the
    sample-space path (every ``gamma`` and the leak test use them).

    Examples
    --------
    With a whitened population covariance the recursion recovers ``W W^T``:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators.shrinkage import schur_shrink_loadings
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=1.0,
    ...                                      rng=0)
    >>> w, info = schur_shrink_loadings(m.covariance(), m.dims, m.structure, None)
    >>> bool(np.allclose(w @ w.T, m.loadings @ m.loadings.T)), sorted(info)
    (True, ['A', 'AB', 'B'])
    """
    m_views = len(dims)
    full = tuple(dims) if full_dims is None else tuple(full_dims)
    off = block_offsets(dims)
    rows = [np.arange(off[m], off[m + 1]) for m in range(m_views)]
    w = np.zeros((cov.shape[0], structure.total_rank))
    info: dict[str, dict[str, object]] = {}
    for b in sorted(structure.blocks, key=len):
        s_rows = np.concatenate([rows[m] for m in sorted(b)])
        outside = [m for m in range(m_views) if m not in b]
        c = cov[np.ix_(s_rows, s_rows)].copy()
        step: dict[str, object] = {}
        if outside:
            o_rows = np.concatenate([rows[m] for m in outside])
            k_o = require_schur_step(structure, dims, b)
            d_o = sum(full[m] for m in outside)
            x, u_det, rest = condition_on_outside(cov, s_rows, o_rows, k_o, n_samples, d_o)
            c -= x @ x.T
            step["conditioned_on"] = int(u_det.shape[1])
        subs = [t for t in structure.blocks if t < b]
        r_all = structure.rank_of(b) + sum(structure.rank_of(t) for t in subs)
        f, spec = shrunk_factor((c + c.T) / 2.0, r_all, 1.0, n_samples,
                                dim=sum(full[m] for m in b))
        if outside and n_samples is not None and leak_z is not None:
            leaked = _leaked(
                cov, s_rows, o_rows, u_det, rest, f, spec, n_samples, leak_z, leak_share,
                d_o,
            )
            f[:, leaked] = 0.0
            step["leaked"] = int(np.sum(leaked))
        g = f @ f.T
        for t in subs:
            wt = w[s_rows][:, structure.columns(t)]
            g -= wt @ wt.T
        r = structure.rank_of(b)
        vals, vecs = top_eigh((g + g.T) / 2.0, r)
        w[s_rows, structure.columns(b)] = vecs * np.sqrt(np.clip(vals, 0.0, None))
        step.update(spec)
        step["rank"] = int(np.sum(vals > 1e-10 * max(float(np.max(vals, initial=0.0)), 1.0)))
        info[format_block(b)] = step
    return w, info


def condition_on_outside(
    cov: NDArray[np.float64],
    s_rows: NDArray[np.intp],
    o_rows: NDArray[np.intp],
    k_o: int,
    n_samples: int | None,
    d_o: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """The part of ``cov[S, S]`` explained by the detectable spikes of ``cov[O, O]``.

    ``cov`` is whitened (noise ``I``). Of the top ``k_O`` eigenpairs
    ``(lambda_j, v_j)`` of ``cov[O, O]`` the detectable ones (debiased spike
    ``ell_j > 0`` at ``gamma_O = d_O / n``) give the columns
    ``x_j = cov[S, O] v_j / sqrt(rho_j^2 lambda_j)``, so that the signal part of
    ``x x^T`` estimates ``W_S P W_S^T`` (``P`` the projection onto the latent
    directions seen by ``O``) without bias to first order as ``n`` and ``d_O``
    grow; ``x x^T`` also carries noise of about ``1 / (n rho_j^2)`` per
    coordinate, which is not removed. ``rho_j^2 = (1 - gamma_O / ell_j^2) /
    (1 + 1 / ell_j)`` is the squared correlation of the sample score ``X_O v_j``
    with its latent, and ``rho_j^2 lambda_j = ell_j c_j^2 (1 + gamma_O / ell_j)^2``
    with ``c_j^2`` the squared eigenvector cosine (docs/shrinkage.md §5.2). With
    ``n_samples=None`` (population) the weight is ``lambda_j - 1``.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
        Whitened covariance.
    s_rows, o_rows : ndarray of int
        Coordinates of the views in ``S`` and of the views outside it.
    k_o : int
        Total rank of the blocks meeting ``O``.
    n_samples : int or None
        Sample size; None for a population covariance.
    d_o : int
        The data's dimension of ``O`` (``gamma_O = d_O / n``); on the sample path it
        exceeds ``len(o_rows)``.

    Returns
    -------
    x : ndarray of shape (len(s_rows), k)
        One column per detectable spike (``k <= k_O``); subtract ``x x^T``.
    u_det : ndarray of shape (len(o_rows), k)
        The detectable eigenvectors ``v_j``.
    rest : float
        ``tr cov[O, O]`` minus the detectable eigenvalues.

    Examples
    --------
    At the population level the conditioning removes the shared block exactly:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators.shrinkage import condition_on_outside
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1", noise_var=1.0, rng=0)
    >>> x, u, rest = condition_on_outside(m.covariance(), np.arange(4), np.arange(4, 9),
    ...                                   1, None, 5)
    >>> w_a = m.loadings[:4]
    >>> bool(np.allclose(x @ x.T, w_a @ w_a.T)), u.shape
    (True, (5, 1))
    """
    vals, vecs = top_eigh(cov[np.ix_(o_rows, o_rows)], k_o)
    gamma_o = 0.0 if n_samples is None else d_o / n_samples
    if gamma_o == 0.0:
        weight = np.clip(vals - 1.0, 0.0, None)
    else:
        ell = debias_eigenvalues(vals, 1.0, gamma_o)
        safe = np.where(ell > 0, ell, 1.0)
        weight = ell * spike_cosine_sq(ell, 1.0, gamma_o) * (1.0 + gamma_o / safe) ** 2
    keep = weight > 0
    x = cov[np.ix_(s_rows, o_rows)] @ (vecs[:, keep] / np.sqrt(weight[keep]))
    rest = float(np.trace(cov[np.ix_(o_rows, o_rows)]) - np.sum(vals[keep]))
    return x, vecs[:, keep], rest


def _leaked(cov, s_rows, o_rows, u_det, rest, f, spec, n_samples, z, share, d_o):
    """Flag kept directions of a Schur step that still covary with the views in O.

    :func:`~hcl_stats._rmt.leaked_directions` on the whitened covariance (noise
    ``I``) for each direction with a positive shrinkage weight: a significant
    residual cross-covariance with ``O`` means the direction is (part of) a shared
    component that ``O`` could not resolve, and it is dropped when the BBP bound
    puts more than ``share`` of its spike in that component (``share = 0``: every
    significant direction is dropped).
    """
    weights = np.asarray(spec["weights"])
    lam = np.asarray(spec["eigenvalues"])
    spikes = np.asarray(spec["spikes"])
    out = np.zeros(f.shape[1], dtype=bool)
    if rest <= 0:
        return out
    idx = np.flatnonzero(weights > 0)
    out[idx] = leaked_directions(
        cov[np.ix_(o_rows, s_rows)], u_det, rest,
        [f[:, k] / np.linalg.norm(f[:, k]) for k in idx], lam[idx], spikes[idx],
        noise_var=1.0, d_o=d_o, n_samples=n_samples, z=z, share=share)
    return out



def _drop_reason(step: dict[str, object]) -> str:
    """Why a block's kept rank is 0, from its step diagnostics."""
    eig = ", ".join(f"{v:.3g}" for v in list(step["eigenvalues"])[:3])  # type: ignore[call-overload]
    edge = f"edge {step['edge']:.3g}, eigenvalues {eig}"
    detected = int(step.get("n_detected", step.get("rank", 0)))  # type: ignore[call-overload]
    if detected == 0:
        return f"every spike is at or below its detectability edge ({edge})"
    leaked = int(step.get("leaked", 0))  # type: ignore[call-overload]
    if leaked >= detected:
        return (f"its {detected} spike(s) above the edge ({edge}) were removed by the leak "
                "test: they still covary with the views outside the block, so they "
                "belong to a shared block that is undetectable there")
    return (f"its {detected - leaked} kept spike(s) above the edge ({edge}) leave "
            "nothing above 1e-10 (whitened) once its sub-blocks' Grams are "
            "subtracted")


def _warn_dropped(info: dict[str, dict[str, object]], structure: Structure,
                  n_samples: int | None, what: str) -> None:
    """BlockDroppedWarning for every requested block whose kept rank is 0."""
    gone = [b for b in structure.blocks if info.get(format_block(b), {}).get("rank", 1) == 0]
    if not gone:
        return
    detail = "; ".join(
        f"{format_block(b)} (r_S = {structure.rank_of(b)}): {_drop_reason(info[format_block(b)])}"
        for b in gone
    )
    warnings.warn(
        f"{what}: requested block(s) {', '.join(format_block(b) for b in gone)} were shrunk to "
        f"exactly zero at n = {n_samples} (whitened scale) [{detail}]. The data show no "
        "detectable signal of their own for them; FitResult.summary() marks them.",
        BlockDroppedWarning,
        stacklevel=4,
    )


@dataclass(frozen=True, kw_only=True)
class SchurShrink(Estimator):
    """Schur-complement estimator with per-step detectability and shrinkage.

    Every step of the bottom-up recursion of
    :class:`~hcl_stats.estimators.SchurComplement` is a PCA of an effective
    covariance (the views of ``S`` conditioned on the views outside ``S``) of
    dimension ``d_S`` with the same noise level; this estimator debiases the
    conditioning, truncates at that step's Marchenko-Pastur edge
    ``sigma^2 (1 + sqrt(d_S / n))^2`` and shrinks by the squared eigenvector
    cosine (:func:`schur_shrink_loadings`, docs/shrinkage.md).

    Parameters
    ----------
    leak_z : float or None, default=4.0
        Leak test: a direction kept in the step of ``S`` whose residual
        cross-covariance with the views outside ``S`` exceeds its null expectation
        by ``leak_z`` null standard deviations is a shared component that was
        undetectable in those views; it is dropped from ``S`` (docs/shrinkage.md
        §5.2). None disables the test.
    leak_share : float, default=0.0
        Drop a significant direction only if the lower bound on its shared energy
        (from the BBP bound on the undetected component's ``||w_O||^2``) exceeds
        this fraction of its spike; 0 drops every significant direction.
    noise_rule : {'scalar', 'per_view'} or float or sequence of float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`. Per-view noise is handled by
        whitening.

    Notes
    -----
    Deterministic; ``rng`` is ignored. Identification: each ``W^S`` up to a right
    ``r_S x r_S`` rotation shared by the views of ``S``. With ``n_samples=None``
    the shrinkage weights are the identity (``eta = lambda - 1``) and the leak
    test is off, so the estimate is exact at the population level whenever
    :class:`~hcl_stats.estimators.SchurComplement` is. It is *not*
    ``SchurComplement`` on a sample covariance: each step's conditioned
    covariance is still truncated to rank ``R_S = sum_{T subset of S} r_T`` before
    the sub-blocks are subtracted, which ``SchurComplement`` does not do (the
    two differ by a few per cent of the Gram at moderate ``n``).
    ``diagnostics.extra['steps']`` gives, per block, ``gamma``, ``edge``, the
    debiased ``spikes``, the ``weights``, ``n_detected`` and the kept ``rank``;
    ``diagnostics.extra['ranks']`` the detected rank of every block.

    References
    ----------
    Donoho, Gavish and Johnstone (2018), Ann. Statist. 46(4), 1742-1778.
    Li, Yu and Zhou (2026), arXiv:2604.05462 (the Schur-complement recursion).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "all:1", rng=1)
    >>> fit = hs.estimators.SchurShrink().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure)
    >>> max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-8
    True
    """

    name: ClassVar[str] = "schur_shrink"
    # every step reads eigenpairs, traces and cross-blocks that the per-view
    # row-space bases preserve; gamma and the leak test take the data's d_m
    samples_path: ClassVar[bool] = True

    leak_z: float | None = 4.0
    leak_share: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.leak_z is not None:
            check_real(self.leak_z, "leak_z", low=0.0)
        check_real(self.leak_share, "leak_share", low=0.0, high=1.0)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        noise = _noise_for_shrinkage(problem)
        white, root = _whiten(problem.cov, problem.dims, noise)
        with one_blas_thread():  # numpy GEMMs between scipy eigh: threads contend
            w, steps = schur_shrink_loadings(
                white, problem.dims, problem.structure, problem.n_samples,
                leak_z=self.leak_z, leak_share=self.leak_share, full_dims=problem.full_dims,
            )
        _warn_dropped(steps, problem.structure, problem.n_samples, "SchurShrink")
        return RawFit(
            w * root[:, None],
            noise,
            problem.structure,
            extra={
                "noise_rule": _rule(problem.noise),
                "steps": steps,
                "ranks": {k: v["rank"] for k, v in steps.items()},
            },
        )


@dataclass(frozen=True, kw_only=True)
class MaskedShrink(MaskedGradient):
    """Masked refinement followed by per-block detectability-aware shrinkage.

    Runs :class:`~hcl_stats.estimators.MaskedGradient` (the masked least-squares
    fit of ``W W^T`` to ``S - sigma^2 I``), then shrinks each block with its own
    effective dimension (:func:`shrink_blocks`). At a stationary point of the
    masked loss every ``W^S`` is the top-``r_S`` factor of the partial residual
    ``S_W - sum_{T != S} W^T W^T^T`` restricted to the views of ``S``: a
    ``d_S``-dimensional spiked covariance with ``n`` samples, so its eigenvalues
    carry the bias ``lambda(ell) - sigma^2 - ell`` and angle of
    docs/shrinkage.md, which the shrinkage removes.

    Parameters
    ----------
    max_iter, tol, memory, init_variant
        As in :class:`~hcl_stats.estimators.MaskedGradient`.
    noise_rule : {'scalar', 'per_view'} or float or sequence of float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`; per-view noise is handled by
        whitening each block before shrinking.
    view_weights : bool, default=True
        Shrink each view's part of a shared block's eigenvectors by its own
        estimated signal share (docs/shrinkage.md §5.6). With ``False``, one
        weight per component (the default before 2026-12-08, which the committed
        studies pin). The view weights help where views carry the signal unevenly
        per coordinate, e.g. views of very different widths; on balanced views the
        two agree (measured in ``benchmarks/README.md``).

    Warns
    -----
    ConvergenceWarning
        If the refinement stops before ``tol``.
    BlockDroppedWarning
        If a requested block is shrunk to exactly zero (all its spikes at or below
        its edge); :meth:`FitResult.summary` marks it.

    Notes
    -----
    Deterministic; ``rng`` is ignored. Identification: each ``W^S`` up to a right
    rotation. With ``n_samples=None`` the shrinkage is the identity, so the
    estimate is the refined one (exact at the population level).
    ``diagnostics.extra['blocks']`` holds the per-block ``gamma``, ``edge``,
    ``weights`` and kept ``rank`` (with view weights, also each view's estimated
    ``view_signal_share`` of a shared block); ``['ranks']`` the kept rank per block.

    References
    ----------
    Donoho, Gavish and Johnstone (2018), Ann. Statist. 46(4), 1742-1778.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "all:1", rng=2)
    >>> fit = hs.estimators.MaskedShrink().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure)
    >>> hs.metrics.overall_gram_error(fit, model, relative=True) < 1e-6
    True
    """

    name: ClassVar[str] = "masked_shrink"
    # per-view noise is handled by whitening each block before shrinking
    balances_views: ClassVar[bool] = False

    view_weights: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "view_weights", check_bool(self.view_weights, "view_weights"))

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        noise = _noise_for_shrinkage(problem)
        # the refinement itself, with the shrinkage-corrected noise variance
        known = check_noise_option(noise if np.ndim(noise) == 0 else tuple(noise))
        raw = MaskedGradient._fit(self, problem.with_(noise=known), rng)
        structure = problem.structure
        w, blocks = shrink_blocks(raw.loadings, problem.dims, structure, raw.noise_var,
                                  problem.n_samples, problem.full_dims, self.view_weights)
        extra = dict(raw.extra)
        extra["noise_rule"] = _rule(problem.noise)
        extra["blocks"] = blocks
        extra["ranks"] = {k: v["rank"] for k, v in blocks.items()}
        extra["unshrunk_objective"] = raw.objective
        _warn_dropped(blocks, structure, problem.n_samples, "MaskedShrink")
        return replace(raw, loadings=w, structure=structure, extra=extra)
