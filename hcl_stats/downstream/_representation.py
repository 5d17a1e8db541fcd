"""The learned representation ``h(x) = C x`` and the moment matrices ``(H, b)`` (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import check_float_array
from ..exceptions import ValidationError
from ..structure import Structure
from ._data import check_beta

__all__ = ["Representation", "moment_matrices", "residual_variance"]


@dataclass(frozen=True, eq=False)
class Representation:
    """Linear representation ``h(x) = C x`` with ``C = (W^T W)^{-1} W^T``.

    Parameters
    ----------
    coef : ndarray of shape (K, d)
        ``C``.
    noise_diagonal : ndarray of shape (d,)
        Diagonal of the (estimated) noise covariance ``Psi``.
    structure : Structure
        Gives the groups (one per block, columns in canonical order).

    Notes
    -----
    Build it with :meth:`from_fit` (estimated ``W``) or :meth:`from_model` (the
    true ``W``, the oracle representation).
    """

    coef: NDArray[np.float64]
    noise_diagonal: NDArray[np.float64]
    structure: Structure

    def __post_init__(self) -> None:
        c = check_float_array(self.coef, "coef", ndim=2)
        psi = check_float_array(self.noise_diagonal, "noise_diagonal", ndim=1)
        if c.shape[0] != self.structure.total_rank or psi.shape[0] != c.shape[1]:
            raise ValidationError(
                f"coef must have shape (K, d) = ({self.structure.total_rank}, "
                f"{psi.shape[0]}); got {c.shape}."
            )
        for name, a in (("coef", c), ("noise_diagonal", psi)):
            a = np.array(a, dtype=float, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @classmethod
    def from_loadings(
        cls, loadings: ArrayLike, noise_diagonal: ArrayLike, structure: Structure
    ) -> Representation:
        """``C = (W^T W)^{-1} W^T`` from loadings of shape (d, K)."""
        w = check_float_array(loadings, "loadings", ndim=2)
        gram = w.T @ w
        try:
            coef = np.linalg.solve(gram, w.T)
        except np.linalg.LinAlgError as exc:
            raise ValidationError(
                "loadings must have full column rank to define (W^T W)^{-1} W^T; got "
                "a singular W^T W."
            ) from exc
        if np.linalg.cond(gram) > 1e12:
            raise ValidationError(
                f"loadings must have full column rank; got cond(W^T W) = "
                f"{np.linalg.cond(gram):.2e}."
            )
        return cls(coef, np.asarray(noise_diagonal, dtype=float), structure)

    @classmethod
    def from_fit(cls, fit: Any, *, reference: Any = None) -> Representation:
        """Representation of a fitted model.

        Parameters
        ----------
        fit : FitResult
        reference : FitResult or HierarchicalFactorModel, optional
            If given, ``fit`` is first rotated onto it with one orthogonal ``Q_S``
            per block (:meth:`FitResult.aligned_to`), the identified ambiguity: it
            changes neither predictions (OLS) nor group norms (group lasso), only
            the coordinates in which ``beta_hat`` is expressed, so that it can be
            compared with ``beta``. A structure-blind fit is first split into
            blocks without the truth (:func:`hcl_stats.metrics.assign_blocks`:
            the Schur recursion on its own ``W_hat W_hat^T``); a global rotation
            onto the truth would choose its groups with the truth.

        Returns
        -------
        Representation
        """
        if reference is not None and not getattr(fit, "structured", True):
            from .._linalg import procrustes
            from ..metrics import assign_blocks

            if reference.structure != fit.structure:
                raise ValidationError(
                    "reference must have the same structure as the fit; got "
                    f"{reference.structure} and {fit.structure}."
                )
            w = assign_blocks(fit)  # data-only split into blocks
            ref = np.asarray(reference.loadings, dtype=float)
            for b in fit.structure.blocks:
                cols = fit.structure.columns(b)
                w[:, cols] = w[:, cols] @ procrustes(w[:, cols], ref[:, cols])
            return cls.from_loadings(w, fit.noise_diagonal(), fit.structure)
        if reference is not None:
            fit = fit.aligned_to(reference)
        structure = reference.structure if reference is not None else fit.structure
        return cls.from_loadings(fit.loadings, fit.noise_diagonal(), structure)

    @classmethod
    def from_model(cls, model: Any) -> Representation:
        """Oracle representation from the true ``W`` and ``Psi``."""
        return cls.from_loadings(model.loadings, model.noise_diagonal(), model.structure)

    @property
    def total_rank(self) -> int:
        """``K``."""
        return int(self.coef.shape[0])

    def transform(self, x: ArrayLike) -> NDArray[np.float64]:
        """Features ``X C^T``, shape ``(m, K)``."""
        x = check_float_array(x, "x", ndim=2)
        if x.shape[1] != self.coef.shape[1]:
            raise ValidationError(
                f"x must have d = {self.coef.shape[1]} columns; got {x.shape[1]}."
            )
        return x @ self.coef.T

    def feature_noise(self) -> NDArray[np.float64]:
        """``C Psi C^T``, the covariance of the noise in ``h(x)``, shape (K, K)."""
        return (self.coef * self.noise_diagonal) @ self.coef.T

    def groups(self) -> list[NDArray[np.intp]]:
        """Column indices of each block, in canonical order."""
        out = []
        for b in self.structure.blocks:
            cols = self.structure.columns(b)
            out.append(np.arange(self.total_rank)[cols])
        return out


def residual_variance(model: Any, beta: ArrayLike, noise_var_y: float) -> float:
    """Variance of ``y - h(x)^T beta`` with the true representation.

    ``sigma_y^2 + beta^T C Psi C^T beta``: the noise level of the oracle
    regression, which enters :func:`hcl_stats.theory.beta_error_bound`.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats import downstream as ds
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=0.1,
    ...                                      rng=0)
    >>> beta = np.array([1.0, 0.0, 0.5])
    >>> data = ds.sample_downstream(m, beta, 2000, noise_var_y=0.1, rng=0)
    >>> rep = ds.Representation.from_model(m)  # the true C = (W^T W)^{-1} W^T
    >>> feats = rep.transform(data.x)
    >>> noise = rep.coef @ np.diag(rep.noise_diagonal) @ rep.coef.T
    >>> v = ds.residual_variance(m, beta, 0.1)
    >>> bool(v > 0.1), bool(abs(np.var(data.y - feats @ beta) - v) < 0.02)
    (True, True)
    """
    rep = Representation.from_model(model)
    beta = check_beta(beta, rep.total_rank)
    return float(noise_var_y + beta @ rep.feature_noise() @ beta)


def moment_matrices(
    features: NDArray[np.float64],
    y: NDArray[np.float64],
    feature_noise: NDArray[np.float64],
    *,
    psd_floor: float = 1e-3,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Noise-corrected normal equations ``(H, b)`` with an eigenvalue floor.

    Parameters
    ----------
    features : ndarray of shape (m, K)
        ``X_hat = X C^T``.
    y : ndarray of shape (m,)
    feature_noise : ndarray of shape (K, K)
        ``C Psi C^T``.
    psd_floor : float, default=1e-3
        Eigenvalues of ``H`` below ``psd_floor * max(lambda_max(H), tiny)`` are
        raised to that value (the Frobenius-nearest matrix with that floor).

    Returns
    -------
    H : ndarray of shape (K, K)
    b : ndarray of shape (K,)
    n_floored : int
        Number of eigenvalues that were raised.

    Notes
    -----
    Uses the raw second moment ``X_hat^T X_hat / m`` (no centring), matching the
    mean-zero model.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats import downstream as ds
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=0.1,
    ...                                      rng=0)
    >>> beta = np.array([1.0, 0.0, 0.5])
    >>> data = ds.sample_downstream(m, beta, 2000, noise_var_y=0.1, rng=0)
    >>> rep = ds.Representation.from_model(m)  # the true C = (W^T W)^{-1} W^T
    >>> feats = rep.transform(data.x)
    >>> noise = rep.coef @ np.diag(rep.noise_diagonal) @ rep.coef.T
    >>> h, b, n_floored = ds.moment_matrices(feats, data.y, noise)
    >>> np.linalg.solve(h, b).round(1).tolist(), n_floored  # close to beta
    ([1.0, -0.0, 0.5], 0)
    """
    m = features.shape[0]
    h = features.T @ features / m - feature_noise
    h = (h + h.T) / 2.0
    b = features.T @ y / m
    vals, vecs = np.linalg.eigh(h)
    top = max(float(vals[-1]), np.finfo(float).tiny)
    floor = psd_floor * top
    low = vals < floor
    n_floored = int(np.sum(low))
    if n_floored:
        vals = np.where(low, floor, vals)
        h = (vecs * vals) @ vecs.T
        h = (h + h.T) / 2.0
    return h, b, n_floored
