"""Adapters to external multi-view factor packages (optional extra ``peers``).

Each adapter imports its package lazily inside ``_fit`` and raises an
``ImportError`` naming the extra when it is missing. None changes global state:
the peer's seed is drawn from the ``rng`` stream and passed through the peer's own
argument; packages that reseed NumPy's legacy global generator anyway have its
state saved and restored around the call, and their console output is captured.

``MOFA`` (mofapy2, MOFA+)
-------------------------
Gaussian likelihood, ARD prior per (view, factor) and spike-and-slab prior on the
weights (mofapy2's defaults), views centred but not scaled.

Mapping a fit to a structure: for factor ``k`` with posterior mean weights
``w_mk`` (view ``m``) and second moment ``E[z_k^2]`` averaged over samples, the
variance it explains in view ``m`` on the data scale is
``v_mk = ||w_mk||^2 E[z_k^2]``. The factor is *active* if
``v_mk / sigma_m^2 >= c_m`` for some view (``sigma_m^2`` = MOFA's mean noise
variance of view ``m``; ``v / sigma^2`` is the factor's eigenvalue in noise units).
The default ``c_m = sqrt(d_m / n)`` is the BBP detectability threshold of a spike
in ``d_m`` dimensions from ``n`` samples: weaker "factors" are indistinguishable
from noise and are the ones MOFA's ARD prior has (almost) switched off. The block is
``S_k = {m : v_mk >= share_threshold * sum_l v_lk}``: the views that receive at
least a ``share_threshold`` fraction (default 0.1) of the factor's explained
variance. Active factors with the same ``S_k`` are merged into one block whose rank
is their count.

Loadings: ``W[:, k] = w_k sqrt(E[z_k^2])`` restricted to the rows of ``S_k`` (the
mask is enforced by zeroing the other views), so that ``W W^T`` estimates the
signal covariance on the data scale when the factors are uncorrelated, as MOFA's
prior assumes. Identification: MOFA's factors are identified by its sparsity
priors; the metrics only use each block's Gram, which is invariant to rotations
within the merged blocks.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..exceptions import ValidationError
from ..structure import Structure
from ._base import Estimator, Problem, RawFit

__all__ = ["MOFA", "factors_to_structure"]


def _import_mofapy2():
    try:
        from mofapy2.run.entry_point import entry_point
    except ImportError as exc:
        raise ImportError(
            "MOFA requires mofapy2; install hcl_stats[peers] (pip install mofapy2)."
        ) from exc
    return entry_point


def factors_to_structure(
    explained: np.ndarray,
    noise: np.ndarray,
    *,
    share_threshold: float,
    min_snr: float,
) -> tuple[Structure | None, list[list[int]]]:
    """Map per-view explained variances of factors to a structure.

    Parameters
    ----------
    explained : ndarray of shape (M, K)
        ``v_mk``, variance explained by factor ``k`` in view ``m`` (data scale).
    noise : ndarray of shape (M,)
        Per-view noise variance ``sigma_m^2``.
    share_threshold : float
        View ``m`` belongs to factor ``k``'s block iff
        ``v_mk >= share_threshold * sum_l v_lk``.
    min_snr : float or ndarray of shape (M,)
        Factor ``k`` is kept iff ``v_mk / sigma_m^2 >= min_snr[m]`` for some ``m``.

    Returns
    -------
    structure : Structure or None
        None if no factor is active.
    columns : list of list of int
        Factor indices of each block, in the structure's canonical order.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[1.0, 0.0, 0.5], [1.0, 2.0, 0.0]])
    >>> s, cols = factors_to_structure(v, np.ones(2), share_threshold=0.1, min_snr=0.1)
    >>> str(s), cols
    ('AB:1 A:1 B:1', [[0], [2], [1]])
    """
    m_views, k = explained.shape
    groups: dict[frozenset[int], list[int]] = {}
    for j in range(k):
        v = explained[:, j]
        if not np.any(v / noise >= min_snr):
            continue
        block = frozenset(int(m) for m in np.flatnonzero(v >= share_threshold * v.sum()))
        groups.setdefault(block, []).append(j)
    if not groups:
        return None, []
    s = Structure(m_views, tuple(groups), tuple(len(c) for c in groups.values()))
    return s, [groups[b] for b in s.blocks]


@dataclass(frozen=True, kw_only=True)
class MOFA(Estimator):
    """MOFA+ (mofapy2) with its factors mapped to a sharing structure.

    Parameters
    ----------
    n_factors : int, optional
        Initial number of factors ``K`` given to MOFA, at most ``min(n, d)``
        (mofapy2 starts from a PCA of the concatenated views). None: the total rank
        of a given structure, else ``min(15, n, d)``.
    share_threshold : float, default=0.1
        A view belongs to a factor's block if it receives at least this fraction of
        the factor's explained variance (module docstring).
    min_snr : float, optional
        A factor is active if its explained variance in some view ``m`` is at least
        this multiple of that view's noise variance. None: ``sqrt(d_m / n)`` per
        view (the BBP threshold; module docstring).
    max_iter : int, default=300
        mofapy2's ``iter``.
    convergence_mode : {'fast', 'medium', 'slow'}, default='fast'
        mofapy2's ELBO-based stopping rule.

    Notes
    -----
    Needs the raw rows. Randomised: the seed passed to mofapy2 is drawn from
    ``rng`` and recorded in ``diagnostics.extra['seed']``. The returned noise
    variance is MOFA's per-view mean noise variance (``1 / E[tau]``); the
    ``noise_rule`` option of the base class is not used.
    Scale and identification conventions: module docstring.

    References
    ----------
    Argelaguet, R. et al. (2020). MOFA+: a statistical framework for comprehensive
    integration of multi-modal single-cell data. *Genome Biology*, 21, 111.
    """

    name: ClassVar[str] = "mofa"
    learns_structure: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True

    n_factors: int | None = None
    share_threshold: float = 0.1
    min_snr: float | None = None
    max_iter: int = 300
    convergence_mode: str = "fast"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_factors is not None:
            check_int(self.n_factors, "n_factors", minimum=1)
        check_real(self.share_threshold, "share_threshold", low=0.0, high=1.0, low_open=True)
        if self.min_snr is not None:
            check_real(self.min_snr, "min_snr", low=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_choice(self.convergence_mode, "convergence_mode", ("fast", "medium", "slow"))

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        data, dims, structure = problem.data, problem.dims, problem.structure
        if data is None:
            raise ValidationError("MOFA needs the raw data rows; call fit(views).")
        # mofapy2 initialises the factors by a PCA of the concatenated views, which
        # has at most min(n, d) components
        limit = min(data.n_samples, int(sum(dims)))
        if self.n_factors is not None:
            k, source = self.n_factors, "n_factors"
        elif structure is not None:
            k, source = structure.total_rank, f"the total rank of structure {structure}"
        else:
            k, source = min(15, limit), "the default min(15, n, d)"
        if k > limit:
            raise ValidationError(
                f"MOFA's number of factors must be <= min(n_samples, d) = "
                f"min({data.n_samples}, {int(sum(dims))}) = {limit} (mofapy2 starts "
                f"from a PCA of the concatenated views); got {k}, from {source}. "
                "Lower n_factors."
            )
        entry_point = _import_mofapy2()
        seed = int(rng.integers(2**31 - 1))
        views = [np.array(v, dtype=float) for v in data.Xs]
        log = io.StringIO()
        state = np.random.get_state()  # noqa: NPY002 - mofapy2 reseeds the global RNG
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    contextlib.redirect_stdout(log):
                warnings.simplefilter("always")
                ent = entry_point()
                ent.set_data_options(scale_views=False, center_groups=True)
                ent.set_data_matrix(
                    [[v] for v in views], likelihoods=["gaussian"] * len(views)
                )
                ent.set_model_options(
                    factors=k, spikeslab_weights=True, ard_weights=True
                )
                ent.set_train_options(
                    iter=self.max_iter, convergence_mode=self.convergence_mode,
                    dropR2=None, seed=seed, quiet=True, verbose=False,
                )
                ent.build()
                ent.run()
                nodes = ent.model.nodes
                w_list = [np.asarray(w, dtype=float) for w in nodes["W"].getExpectation()]
                z_e2 = np.asarray(nodes["Z"].getExpectations()["E2"], dtype=float)
                tau = [np.asarray(t, dtype=float) for t in nodes["Tau"].getExpectation()]
        finally:
            np.random.set_state(state)  # noqa: NPY002
        z_scale = np.sqrt(z_e2.mean(axis=0))  # (K,)
        noise = np.array([float(np.mean(1.0 / t)) for t in tau])
        explained = np.array([
            np.sum(w * w, axis=0) * z_scale**2 for w in w_list
        ])  # (M, K)
        min_snr = (
            np.sqrt(np.asarray(dims, dtype=float) / data.n_samples)
            if self.min_snr is None else self.min_snr
        )
        fitted, columns = factors_to_structure(
            explained, noise, share_threshold=self.share_threshold, min_snr=min_snr
        )
        if fitted is None:
            from ..exceptions import NoStructureError

            raise NoStructureError(
                "the data support no shared structure: MOFA found no active factor "
                "(min_snr must be below the largest factor signal-to-noise ratio "
                f"{float((explained / noise[:, None]).max()):.3g})."
            )
        w_full = np.vstack(w_list) * z_scale  # (d, K) on the data scale
        w = np.hstack([w_full[:, c] for c in columns])
        w[~fitted.mask(dims)] = 0.0
        extra = {
            "seed": seed, "n_factors": k,
            "explained": explained.tolist(),
            "peer_warnings": [f"{x.category.__name__}: {x.message}" for x in caught],
        }
        return RawFit(w, noise, fitted, extra=extra)
