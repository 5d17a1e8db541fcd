"""Asymptotic predictions of the expected Gram errors of the estimators.

:func:`predicted_error` returns a table laid out like :func:`hcl_stats.theory.limits`
with the predicted ``E ||G_hat - G||_F`` of every row:

* ``naive`` and ``pca_shrink`` (overall row): spiked-covariance asymptotics
  (eigenvalue limits and eigenvector cosines; Baik, Ben Arous and Peche 2005;
  Paul 2007) plus the first-order fluctuation of the ``K x K`` signal block
  (Daleckii-Krein), which is of order ``K^2 / n`` and not negligible when ``K / D``
  is not small;
* ``masked_gradient`` (every row): first-order (delta-method) asymptotics of the
  masked least-squares fit ``min ||W W^T - (S - sigma_hat^2 I)||_F^2`` (a sandwich
  covariance), with the Cramer-Rao bound of the Gaussian model under the mask
  beside it (Fisher information with the rotations removed by a pseudo-inverse).

Derivations are in ``docs/theory.md`` ("Predicted errors").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import check_choice, check_int
from ..exceptions import ValidationError
from ._model_rows import check_uncorrelated_model, noise_per_view, row_loadings
from .limits import RowSpec, row_specs
from .spiked import spiked_overall_risk

__all__ = [
    "fisher_information",
    "masked_parameters",
    "param_covariances",
    "predicted_error",
    "rotation_basis",
    "spiked_overall_risk",
]

#: Largest number of free loading parameters for which the masked-gradient
#: prediction builds its (p x p) matrices (about 300 MB each at this size).
MAX_PARAMS = 6000

ESTIMATORS = ("naive", "pca_shrink", "masked_gradient")


# ------------------------------------------------------------- masked fit
def masked_parameters(model: Any) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row and column indices of the free loading entries (inside the mask).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.predict import masked_parameters
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> rows, cols = masked_parameters(m)
    >>> len(rows) == int(m.structure.mask(m.dims).sum()) == 7 * 2 + 3
    True
    """
    mask = model.structure.mask(model.dims)
    rows, cols = np.nonzero(mask)
    return rows.astype(np.intp), cols.astype(np.intp)


def _t_matrix(p_mat: NDArray, w: NDArray, rows: NDArray, cols: NDArray) -> NDArray:
    """``T(P)[(a,b),(c,e)] = P_ac (W^T P W)_be + (P W)_ae (P W)_cb`` on the free entries."""
    pw = p_mat @ w
    wpw = w.T @ pw
    return (
        p_mat[np.ix_(rows, rows)] * wpw[np.ix_(cols, cols)]
        + pw[rows[:, None], cols[None, :]] * pw[rows[None, :], cols[:, None]]
    )


def fisher_information(model: Any, n_samples: int) -> NDArray[np.float64]:
    """Fisher information of ``(W under the mask, sigma^2)`` from ``n`` Gaussian rows.

    ``I = nu/2 * d vec(Sigma)^T (Sigma^{-1} kron Sigma^{-1}) d vec(Sigma)`` with
    ``nu = n - 1`` (unknown mean). With ``P = Sigma^{-1}`` the loading block is
    ``nu T(P)``, ``T(P)[(a,b),(c,e)] = P_ac (W^T P W)_be + (P W)_ae (P W)_cb``; the
    cross terms with ``sigma^2`` are ``nu (P^2 W)_ab`` and
    ``I_{sigma^2 sigma^2} = nu tr(P^2) / 2``. Scalar noise only.

    Returns
    -------
    ndarray of shape (p + 1, p + 1)
        Parameters in the order of :func:`masked_parameters`, then ``sigma^2``.

    Examples
    --------
    The likelihood is flat along the rotations, so they are in the kernel:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.theory.predict import fisher_information, rotation_basis
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> info = fisher_information(m, 100)
    >>> info.shape, bool(np.allclose(info[:-1, :-1] @ rotation_basis(m), 0, atol=1e-8))
    ((18, 18), True)
    """
    w = np.asarray(model.loadings)
    rows, cols = masked_parameters(model)
    nu = n_samples - 1
    prec = np.linalg.inv(model.covariance())
    p = rows.size
    out = np.empty((p + 1, p + 1))
    out[:p, :p] = nu * _t_matrix(prec, w, rows, cols)
    cross = nu * (prec @ prec @ w)[rows, cols]
    out[:p, p] = cross
    out[p, :p] = cross
    out[p, p] = nu * float(np.sum(prec * prec)) / 2.0
    return out


def rotation_basis(model: Any) -> NDArray[np.float64]:
    """Orthonormal basis of the rotation directions on the free loading entries.

    For every block ``S`` and ``i < j <= r_S``: ``dW^S = W^S (e_i e_j^T - e_j e_i^T)``,
    along which every ``W^S W^S^T`` (and the likelihood) is constant.

    Returns
    -------
    ndarray of shape (p, sum_S r_S (r_S - 1) / 2)

    Examples
    --------
    Block AB of rank 2 has one rotation direction, block A of rank 1 none:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.theory.predict import rotation_basis
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> b = rotation_basis(m)
    >>> b.shape, bool(np.allclose(b.T @ b, np.eye(1)))
    ((17, 1), True)
    """
    w = np.asarray(model.loadings)
    rows, cols = masked_parameters(model)
    dirs = []
    for b in model.structure.blocks:
        c = model.structure.columns(b)
        ws = w[:, c]
        r = ws.shape[1]
        for i in range(r):
            for j in range(i + 1, r):
                gen = np.zeros((r, r))
                gen[i, j], gen[j, i] = 1.0, -1.0
                dw = np.zeros_like(w)
                dw[:, c] = ws @ gen
                dirs.append(dw[rows, cols])
    if not dirs:
        return np.zeros((rows.size, 0))
    q, _ = np.linalg.qr(np.array(dirs).T)
    return q


def _pinv_known_null(mat: NDArray, null: NDArray) -> NDArray:
    """Pseudo-inverse of a symmetric PSD matrix whose null space is ``span(null)``.

    ``(A + c N N^T)^{-1} = A^+ + N N^T / c`` for orthonormal ``N`` spanning the
    null space of ``A``; one Cholesky factorisation instead of an eigendecomposition.
    """
    from scipy.linalg import cho_factor, cho_solve

    sym = (mat + mat.T) / 2
    if null.shape[1] == 0:
        return cho_solve(cho_factor(sym), np.eye(sym.shape[0]))
    c = float(np.trace(sym)) / sym.shape[0]
    nn = null @ null.T
    return cho_solve(cho_factor(sym + c * nn), np.eye(sym.shape[0])) - nn / c


def param_covariances(model: Any, n_samples: int) -> tuple[NDArray, NDArray]:
    """Asymptotic covariances of the free loading entries: masked fit and CRB.

    The masked least-squares fit solves ``J^T vec(W W^T - S_W) = 0`` on the free
    entries (``S_W = S - sigma_hat^2 I``, ``sigma_hat^2`` the mean of the bottom
    ``D - K`` eigenvalues). Linearising at the truth, ``dW = H^+ g`` with the
    Gauss-Newton matrix ``H = 2 T(I)`` and ``g = 2 (E W - dsigma^2 W)`` masked,
    ``Cov(E W) = T(Sigma) / nu`` and ``Var(dsigma^2) = 2 sigma^4 / (nu (D - K))``
    (uncorrelated with ``E W``), so ``Cov(dW) = T(I)^+ [T(Sigma) / nu + 2 sigma^4
    w w^T / (nu (D - K))] T(I)^+``. The pseudo-inverses drop the
    ``sum_S r_S (r_S - 1) / 2`` rotation directions ``W^S -> W^S A`` (``A`` skew),
    along which every ``W^S W^S^T`` is constant.

    Returns
    -------
    (masked, crb) : pair of ndarray of shape (p, p)

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.theory.predict import param_covariances
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> cov_fit, crb = param_covariances(m, 100)
    >>> cov_fit.shape, bool(np.trace(cov_fit) >= np.trace(crb) > 0)
    ((17, 17), True)
    """
    w = np.asarray(model.loadings)
    rows, cols = masked_parameters(model)
    if rows.size > MAX_PARAMS:
        raise ValidationError(
            f"the masked-gradient prediction builds p x p matrices; the model has "
            f"p = {rows.size} free loading entries > {MAX_PARAMS}. Use smaller dims."
        )
    nu = n_samples - 1
    null = rotation_basis(model)
    h_pinv = _pinv_known_null(_t_matrix(np.eye(w.shape[0]), w, rows, cols), null)
    meat = _t_matrix(model.covariance(), w, rows, cols) / nu
    s = noise_per_view(model)
    d, k = w.shape
    if np.all(s == s[0]) and d > k:
        wv = w[rows, cols]
        meat = meat + 2 * s[0] ** 2 / (nu * (d - k)) * np.outer(wv, wv)
    masked = h_pinv @ meat @ h_pinv
    fisher = fisher_information(model, n_samples)
    crb = _pinv_known_null(fisher, np.vstack([null, np.zeros((1, null.shape[1]))]))[
        : rows.size, : rows.size
    ]
    return masked, crb


def _gram_risk(
    model: Any, row: RowSpec, cov: NDArray, rows: NDArray, cols: NDArray
) -> tuple[float, float, float]:
    """First- and second-order ``E ||dF F^T + F dF^T + dF dF^T||^2`` of a row.

    ``dF`` is Gaussian with covariance ``cov`` on the free entries of the row.
    Returns ``(first, second, var_first)``, the last the variance of the
    first-order squared norm (for the Jensen correction of ``E ||.||``).
    """
    f = row_loadings(model, row)
    ucols = np.unique(np.concatenate(row.columns))
    # map each free entry to (local row, local column) of the row's factor, or -1
    loc_r = np.full(rows.size, -1)
    off = 0
    for m, c in zip(row.views, row.columns, strict=True):
        sl = model.row_slice(m)
        inside = (rows >= sl.start) & (rows < sl.stop) & np.isin(cols, c)
        loc_r[inside] = rows[inside] - sl.start + off
        off += model.dims[m]
    sel = loc_r >= 0
    a = loc_r[sel]
    b = np.searchsorted(ucols, cols[sel])
    c_row = cov[np.ix_(sel, sel)]
    ftf = f.T @ f
    # J^T J of dF -> dF F^T + F dF^T is 2 T_F, T_F[(a,b),(c,e)] = [a = c] (F^T F)_be + F_ae F_cb
    t_f = (a[:, None] == a[None, :]) * ftf[np.ix_(b, b)] + f[a[:, None], b[None, :]] * f[
        a[None, :], b[:, None]
    ]
    tc = t_f @ c_row
    first = 2.0 * float(np.trace(tc))
    var_first = 8.0 * float(np.sum(tc * tc.T))  # Var ||J dF||^2 = 2 tr((2 T_F C)^2)
    full = np.zeros((f.shape[0], ucols.size, f.shape[0], ucols.size))
    full[a[:, None], b[:, None], a[None, :], b[None, :]] = c_row
    m1 = np.einsum("abcb->ac", full)
    m2 = np.einsum("abae->be", full)
    t3 = float(np.einsum("abce,cbae->", full, full))
    second = float(np.sum(m1**2) + np.sum(m2**2)) + t3
    return first, second, var_first


def predicted_error(model: Any, n_samples: int, estimator: str) -> Any:
    """Predicted expected Gram error of an estimator, row by row.

    Parameters
    ----------
    model : HierarchicalFactorModel
        The true model (uncorrelated latents).
    n_samples : int
        ``n``; must exceed ``K + 3``.
    estimator : {'naive', 'pca_shrink', 'masked_gradient'}

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`hcl_stats.theory.limits` (``view``, ``block``,
        ``kind``) with ``predicted_error`` (predicted ``E ||G_hat - G||_F``: for
        ``masked_gradient`` the square root of the predicted mean squared error
        less its delta-method Jensen gap ``Var(||X||^2) / (8 E||X||^2^{3/2})``; for
        the spectral estimators the square root, whose gap is below 0.1% there
        because ``||X||`` concentrates), ``predicted_mse``,
        ``valid`` (whether the asymptotics apply; see Notes) and ``note``. For
        ``masked_gradient`` also ``crb`` (``sqrt`` of the Cramer-Rao bound of the
        Gaussian model under the mask) and ``second_order`` (the ``dW dW^T`` term
        included in ``predicted_mse``). Spectral estimators are predicted on the
        ``overall`` row only (NaN elsewhere: their per-block errors depend on how
        a structure-blind fit is assigned to blocks).

    Raises
    ------
    ValidationError
        On a bad ``estimator``, ``n_samples <= K + 3``, heteroscedastic noise for
        the spectral estimators, or a model too large for the masked prediction.

    Notes
    -----
    ``valid`` is False for the spectral estimators when a spike is undetectable
    or the eigenvalue of a detectable spike lies within three standard deviations
    (Gaussian plus Tracy-Widom scale) of the bulk edge: near the BBP transition
    the eigenvalue is not Gaussian and the cosine limit is not reached. For
    ``masked_gradient`` it is False when the second-order term exceeds 10% of the
    first-order one (``n`` not large compared with ``d``).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((20, 20, 20), "all:1", rng=0)
    >>> tab = hs.theory.predicted_error(model, 4000, "masked_gradient")
    >>> bool(tab["valid"].all()) and bool((tab["crb"] ** 2 <= tab["predicted_mse"]).all())
    True
    """
    import pandas as pd

    check_uncorrelated_model(model)
    estimator = check_choice(estimator, "estimator", ESTIMATORS)
    k = model.structure.total_rank
    n = check_int(n_samples, "n_samples", minimum=k + 4)
    specs = row_specs(model)
    recs = [{"view": r.view, "block": r.block, "kind": r.kind,
             "predicted_error": float("nan"), "predicted_mse": float("nan"),
             "valid": False, "note": ""} for r in specs]
    if estimator in ("naive", "pca_shrink"):
        s = noise_per_view(model)
        if not np.all(s == s[0]):
            raise ValidationError(
                "the spiked-model prediction needs isotropic noise (one sigma^2 for "
                f"all views); got noise_var = {list(s)}."
            )
        w = np.asarray(model.loadings)
        spikes = np.linalg.svd(w, compute_uv=False) ** 2
        res = spiked_overall_risk(spikes, float(s[0]), n, w.shape[0], estimator)
        ok = res["n_undetectable"] == 0 and res["margin"] > 3.0
        note = (f"margin {res['margin']:.2f} sd from the edge; "
                f"{res['n_undetectable']} undetectable spike(s)")
        recs[-1].update(predicted_error=math.sqrt(res["total"]), predicted_mse=res["total"],
                        valid=ok, note=note)
        for r in recs[:-1]:
            r["note"] = "per-block error of a structure-blind fit: not predicted"
        return pd.DataFrame.from_records(recs)
    masked, crb = param_covariances(model, n)
    rows, cols = masked_parameters(model)
    for rec, spec in zip(recs, specs, strict=True):
        first, second, var_first = _gram_risk(model, spec, masked, rows, cols)
        c_first, _, _ = _gram_risk(model, spec, crb, rows, cols)
        mse = first + second
        # E ||X|| = sqrt(m) - Var(||X||^2) / (8 m^{3/2}) + ... (delta method)
        mean = math.sqrt(mse) * (1.0 - var_first / (8.0 * mse * mse))
        rec.update(predicted_error=mean, predicted_mse=mse,
                   crb=math.sqrt(c_first), second_order=second,
                   valid=bool(second <= 0.1 * first),
                   note=f"second/first order = {second / first:.3f}")
    return pd.DataFrame.from_records(recs)
