"""Achievable limits beside every error: detectability, known-latent oracle, spectral limit.

:func:`limits` returns, for a :class:`~hcl_stats.HierarchicalFactorModel` and a
sample size ``n``, one row per (view, block), one per structure (block ``S``: its
full Gram ``W^S W^S^T`` over the views of ``S``) and one ``overall`` row
(``W W^T``), with

* the spikes of the row's Gram and their detectability against the global
  Marchenko-Pastur / BBP edge ``sigma^2 sqrt(D / n)`` and against the restricted
  edge ``sigma^2 sqrt(p / n)`` (``p`` = number of coordinates of the row's Gram);
* ``oracle_floor``: the exact RMS risk ``sqrt(E ||G_hat - G||_F^2)`` of the
  known-latent least-squares oracle, and ``oracle_crb``: its first-order term,
  the Cramer-Rao bound of the model in which ``z`` is observed;
* ``zero_error = ||G||_F`` (the error of estimating zero);
* ``spectral_limit`` (overall row): the asymptotic risk of the best orthogonally
  equivariant (structure-blind) estimator of ``W W^T``.

Derivations, proofs and the conditions under which each number is a bound are in
``docs/theory.md`` ("Limits beside every error").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import check_int
from ..structure import format_block
from ._model_rows import check_uncorrelated_model, noise_per_view, row_loadings

__all__ = ["RowSpec", "limits", "ls_oracle_risk", "row_specs", "spectral_limit_terms"]


@dataclass(frozen=True)
class RowSpec:
    """One row of a limits table: which views and which loading columns it covers."""

    view: str
    block: str
    kind: str  # "view_block", "structure" or "overall"
    views: tuple[int, ...]
    #: per view in ``views``: the loading columns of the row for that view
    columns: tuple[NDArray[np.intp], ...]


def _view_letter(m: int) -> str:
    return chr(ord("A") + m)


def row_specs(model: Any) -> list[RowSpec]:
    """The rows of :func:`limits`, in its order: (view, block), structures, overall.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.limits import row_specs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> [(r.kind, r.view, r.block) for r in row_specs(m)][:3]
    [('view_block', 'A', 'AB'), ('view_block', 'B', 'AB'), ('view_block', 'A', 'A')]
    """
    st = model.structure
    rows: list[RowSpec] = []
    for b in st.blocks:
        cols = np.arange(st.columns(b).start, st.columns(b).stop)
        for m in sorted(b):
            rows.append(RowSpec(_view_letter(m), format_block(b), "view_block", (m,), (cols,)))
    for b in st.blocks:
        cols = np.arange(st.columns(b).start, st.columns(b).stop)
        views = tuple(sorted(b))
        rows.append(RowSpec("", format_block(b), "structure", views, tuple(cols for _ in views)))
    views = tuple(range(len(model.dims)))
    per_view = []
    for m in views:
        per_view.append(
            np.concatenate(
                [np.arange(st.columns(b).start, st.columns(b).stop) for b in st.blocks_of(m)]
            ).astype(np.intp)
        )
    rows.append(RowSpec("", "overall", "overall", views, tuple(per_view)))
    return rows


def ls_oracle_risk(model: Any, row: RowSpec, n_samples: int) -> tuple[float, float]:
    """Exact ``E ||G_hat - G||_F^2`` of the known-latent least-squares oracle, and its CRB.

    The oracle observes ``x_i`` and ``z_i`` (``i = 1..n``), regresses ``X`` on all
    ``K`` latents without intercept (``W_tilde = X^T Z (Z^T Z)^{-1}``), keeps the
    entries inside the structure mask and returns ``G_hat`` built from them like
    ``G``. With ``V = (Z^T Z)^{-1}`` (inverse Wishart, ``q = n - K - 1``) the rows of
    view ``m`` of the error ``D_m`` are i.i.d. ``N(0, sigma_m^2 V_m)`` given ``Z``
    (``V_m`` = ``V`` on the row's columns of view ``m``) and independent across
    views, so the odd moments vanish and (docs/theory.md, Proposition L1)

        E ||G_hat - G||^2 = sum_{m, m'} [ d_m s_m tr(E V_m W_m'^T W_m')
                            + d_m' s_m' tr(E V_m' W_m^T W_m)
                            + 2 [m = m'] s_m tr(E V_m W_m^T W_m)
                            + s_m s_m' (d_m d_m' E tr(V_m V_m')
                                        + [m = m'] d_m (E tr V_m^2 + E (tr V_m)^2)) ],

    with ``s_m = sigma_m^2`` and the inverse-Wishart moments ``E V = I / q``,
    ``Cov(V_ij, V_kl) = (2 [i = j][k = l] / q + [i = k][j = l] + [i = l][j = k]) / c``,
    ``c = (n - K) q (n - K - 3)``. The CRB is the same sum with ``E V = I / n`` and
    without the ``s s'`` (second-order) terms.

    Returns
    -------
    (risk, crb) : (float, float)
        ``E ||G_hat - G||_F^2`` and the Cramer-Rao value (both squared Frobenius).

    Examples
    --------
    The oracle's risk is at least its Cramer-Rao bound:

    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.limits import ls_oracle_risk, row_specs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> risk, crb = ls_oracle_risk(m, row_specs(m)[-1], 200)  # the overall row
    >>> bool(risk >= crb > 0)
    True
    """
    k = model.structure.total_rank
    n = int(n_samples)
    q = n - k - 1
    c = (n - k) * q * (n - k - 3)
    s = noise_per_view(model)
    w = np.asarray(model.loadings)
    risk = 0.0
    crb = 0.0
    for m, cm in zip(row.views, row.columns, strict=True):
        wm = w[model.row_slice(m)]
        dm = model.dims[m]
        for mp, cmp_ in zip(row.views, row.columns, strict=True):
            wmp = w[model.row_slice(mp)]
            dmp = model.dims[mp]
            common = np.intersect1d(cm, cmp_)
            first = (
                dm * s[m] * float(np.sum(wmp[:, common] ** 2))
                + dmp * s[mp] * float(np.sum(wm[:, common] ** 2))
            )
            if m == mp:
                first += 2.0 * s[m] * float(np.sum(wm[:, cm] ** 2))
                etr_v2 = ((2.0 / q + 1.0) * cm.size + cm.size**2) / c + cm.size / q**2
                etr_sq = (2.0 * cm.size**2 / q + 2.0 * cm.size) / c + cm.size**2 / q**2
                second = s[m] ** 2 * (dm * dm * etr_v2 + dm * (etr_v2 + etr_sq))
            else:
                etr_vv = (
                    ((2.0 / q + 1.0) * common.size + cm.size * cmp_.size) / c
                    + common.size / q**2
                )
                second = s[m] * s[mp] * dm * dmp * etr_vv
            risk += first / q + second
            crb += first / n
    return risk, crb


def _spikes(g_factor: NDArray) -> NDArray[np.float64]:
    """Non-zero eigenvalues of ``F F^T`` (descending) from a factor ``F``."""
    if g_factor.size == 0:
        return np.zeros(0)
    sv = np.linalg.svd(g_factor, compute_uv=False)
    return np.sort(sv**2)[::-1]


def spectral_limit_terms(
    spikes: NDArray, noise_var: float, gamma: float
) -> tuple[NDArray, NDArray]:
    """Per-spike limits ``(c^2, risk)`` of the optimal equivariant Gram estimator.

    ``c^2 = (1 - gamma / t^2) / (1 + gamma / t)`` (``t = ell / sigma^2``) above the
    BBP threshold ``t > sqrt(gamma)``, else 0; the Frobenius-optimal weight is
    ``eta = ell c^2`` and the spike's limiting squared error ``ell^2 (1 - c^4)``
    (``ell^2`` when undetectable).

    Examples
    --------
    A spike below the BBP threshold ``sqrt(gamma)`` is undetectable (``c^2 = 0``,
    risk ``ell^2``); at ``gamma = 0`` the risk vanishes:

    >>> import numpy as np
    >>> from hcl_stats.theory.limits import spectral_limit_terms
    >>> c2, risk = spectral_limit_terms(np.array([4.0, 0.1]), 1.0, 0.25)
    >>> c2.round(6).tolist(), risk.round(6).tolist()
    ([0.926471, 0.0], [2.266436, 0.01])
    >>> spectral_limit_terms(np.array([4.0]), 1.0, 0.0)[1].tolist()
    [0.0]
    """
    from .._rmt import spike_cosine_sq

    ell = np.asarray(spikes, dtype=float)
    c2 = spike_cosine_sq(ell, noise_var, gamma)
    return c2, ell**2 * (1.0 - c2**2)


def limits(model: Any, n_samples: int) -> Any:
    """Achievable limits for every error reported by a recovery study.

    Parameters
    ----------
    model : HierarchicalFactorModel
        The true model (uncorrelated latents, ``latent_cov=None``).
    n_samples : int
        Unlabelled sample size ``n``; must exceed ``K + 3``.

    Returns
    -------
    pandas.DataFrame
        One row per (view, block), then one per structure, then ``overall``.
        Columns: ``view`` (letter; empty on structure rows and ``overall``),
        ``block`` (text such as ``ABC``, or ``overall``), ``kind``, ``p`` (number
        of coordinates of the row's Gram: ``d_m``, ``d_S`` or ``D``), ``spikes``
        (non-zero eigenvalues of the row's Gram ``G``, text), ``spike_min``,
        ``edge_global`` (``sigma^2 sqrt(D/n)``), ``edge_restricted``
        (``sigma^2 sqrt(p/n)``), ``detectable_global`` and
        ``detectable_restricted`` (every spike above the edge; ``sigma^2`` is the
        largest noise variance of the row's views), ``zero_error`` (``||G||_F``),
        ``oracle_floor`` (``sqrt`` of the exact mean squared error of the
        known-latent least-squares oracle), ``oracle_crb`` (``sqrt`` of the
        known-latent Cramer-Rao bound; an asymptotic lower bound for every
        regular estimator from ``x`` alone) and ``spectral_limit`` (overall row
        only, isotropic noise only: the asymptotic RMS risk of the best
        orthogonally equivariant estimator of ``W W^T``; NaN elsewhere) and
        ``spectral_limit_finite_n`` (an attempted finite-``n`` correction:
        finite-``K`` ratio ``(D - K)/(n - 1)`` plus the ``K x K`` fluctuation term
        of docs/theory.md §9; **not validated**: it over-predicts the fixed-weight
        shrinker's Monte Carlo MSE by 2-15% in reports/limits/numbers.md, while
        ``spectral_limit`` is within 4%).

    Raises
    ------
    ValidationError
        If ``model`` is not a model with uncorrelated latents or ``n_samples <= K + 3``.

    Notes
    -----
    See docs/theory.md, "Limits beside every error": the oracle's risk is exact
    at every ``n`` (Proposition L1); the CRB bounds ``lim n E||G_hat - G||^2`` of
    regular estimators from ``x`` because observing ``z`` can only add Fisher
    information (Proposition L2); the spectral limit is the proportional-asymptotic
    (``D/n -> gamma``) risk of Donoho, Gavish and Johnstone (2018) for Frobenius loss.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((20, 30), "AB:1 A:1 B:1", rng=0)
    >>> tab = hs.theory.limits(model, 2000)
    >>> list(tab["block"])
    ['AB', 'AB', 'A', 'B', 'AB', 'A', 'B', 'overall']
    >>> bool((tab["oracle_crb"] <= tab["oracle_floor"]).all())
    True
    """
    import pandas as pd

    check_uncorrelated_model(model)
    k = model.structure.total_rank
    n = check_int(n_samples, "n_samples", minimum=k + 4)
    d_total = int(sum(model.dims))
    noise = noise_per_view(model)
    isotropic = bool(np.all(noise == noise[0]))
    records = []
    for row in row_specs(model):
        f = row_loadings(model, row)
        spikes = _spikes(f)
        p = int(sum(model.dims[m] for m in row.views))
        s2 = float(max(noise[m] for m in row.views))
        edge_g = s2 * math.sqrt(d_total / n)
        edge_r = s2 * math.sqrt(p / n)
        risk, crb = ls_oracle_risk(model, row, n)
        g_norm = float(np.sqrt(np.sum(spikes**2)))
        spec = spec_n = float("nan")
        if row.kind == "overall" and isotropic:
            from .spiked import spiked_overall_risk

            _, per = spectral_limit_terms(spikes, s2, d_total / n)
            spec = float(np.sqrt(np.sum(per)))
            spec_n = math.sqrt(
                spiked_overall_risk(spikes, s2, n, d_total, "oracle_shrink")["total"]
            )
        records.append(
            {
                "view": row.view,
                "block": row.block,
                "kind": row.kind,
                "p": p,
                "spikes": " ".join(f"{v:.4g}" for v in spikes),
                "spike_min": float(spikes[-1]) if spikes.size else 0.0,
                "edge_global": edge_g,
                "edge_restricted": edge_r,
                "detectable_global": bool(spikes.size and spikes[-1] > edge_g),
                "detectable_restricted": bool(spikes.size and spikes[-1] > edge_r),
                "zero_error": g_norm,
                "oracle_floor": math.sqrt(risk),
                "oracle_crb": math.sqrt(crb),
                "spectral_limit": spec,
                "spectral_limit_finite_n": spec_n,
            }
        )
    return pd.DataFrame.from_records(records)
