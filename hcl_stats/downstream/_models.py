"""Downstream estimators (EIV regression, group lasso) and their evaluation (private)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import check_int, check_real
from ..exceptions import ValidationError
from ..structure import Structure, format_block
from ._cv import CVResult, cross_validate, lambda_max, theory_lambda
from ._data import DownstreamData, check_beta
from ._group_lasso import solve_group_lasso
from ._representation import Representation, moment_matrices

__all__ = ["DownstreamFit", "EIVRegression", "GroupLasso", "evaluate", "prepare"]


@dataclass(frozen=True, eq=False)
class DownstreamFit:
    """A fitted downstream coefficient vector.

    Parameters
    ----------
    coef : ndarray of shape (K,)
        ``beta_hat`` in the coordinates of the representation.
    structure : Structure
        Groups (blocks) of the coefficients.
    method : str
        Repr of the estimator.
    lam : float
        Penalty used (0 for :class:`EIVRegression`).
    n_floored : int
        Eigenvalues of ``H`` raised by the floor.
    n_iter : int
    converged : bool
    cv : CVResult or None
    """

    coef: NDArray[np.float64]
    structure: Structure
    method: str
    lam: float = 0.0
    n_floored: int = 0
    n_iter: int = 0
    converged: bool = True
    cv: CVResult | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        c = np.array(self.coef, dtype=float, copy=True)
        c.setflags(write=False)
        object.__setattr__(self, "coef", c)

    def group_norms(self) -> dict[frozenset[int], float]:
        """``||beta_hat_S||_2`` per block."""
        return {
            b: float(np.linalg.norm(self.coef[self.structure.columns(b)]))
            for b in self.structure.blocks
        }

    def selected(self) -> tuple[frozenset[int], ...]:
        """Blocks with a non-zero coefficient group."""
        return tuple(b for b, v in self.group_norms().items() if v > 0)

    def predict(self, rep: Representation, x: ArrayLike) -> NDArray[np.float64]:
        """``h(x)^T beta_hat``, shape (m,)."""
        return rep.transform(x) @ self.coef


def prepare(rep: Representation, data: DownstreamData):
    if not isinstance(rep, Representation):
        raise ValidationError(
            f"rep must be a Representation; got {type(rep).__name__}."
        )
    if not isinstance(data, DownstreamData):
        raise ValidationError(
            f"data must be a DownstreamData; got {type(data).__name__}."
        )
    return rep.transform(data.x), data.y, rep.feature_noise()


@dataclass(frozen=True, kw_only=True)
class EIVRegression:
    """Bias-corrected (errors-in-variables) least squares ``beta_hat = H^{-1} b``.

    Parameters
    ----------
    psd_floor : float, default=1e-3
        Eigenvalue floor of ``H`` relative to its largest eigenvalue (see
        :func:`moment_matrices`).

    Notes
    -----
    Deterministic. With the true representation and ``m -> inf``, ``H -> I`` and
    ``b -> beta``; the estimator is the method of moments for ``beta`` under
    additive feature noise of known covariance ``C Psi C^T``.
    """

    psd_floor: float = 1e-3

    def fit(self, rep: Representation, data: DownstreamData) -> DownstreamFit:
        """Fit on labelled data; returns a :class:`DownstreamFit`."""
        check_real(self.psd_floor, "psd_floor", low=0.0, high=1.0)
        feats, y, fn = prepare(rep, data)
        h, b, nf = moment_matrices(feats, y, fn, psd_floor=self.psd_floor)
        coef = np.linalg.solve(h, b)
        return DownstreamFit(coef, rep.structure, repr(self), 0.0, nf)


@dataclass(frozen=True, kw_only=True)
class GroupLasso:
    """Group lasso over structures on the noise-corrected moments.

    Minimises ``1/2 beta^T H beta - b^T beta + lam sum_S sqrt(r_S) ||beta_S||_2``.

    Parameters
    ----------
    lam : float or {'cv', 'theory'}, default='cv'
        A fixed penalty; ``'cv'`` (K-fold cross-validation over fractions of
        ``lambda_max``, see :func:`cross_validate`, then a refit on all rows at
        the chosen fraction of the full-data ``lambda_max``); or ``'theory'``
        (:func:`theory_lambda` with the residual SD of the EIV fit).
    n_folds : int, default=5
    rule : {'min', 'one_se'}, default='min'
        CV selection rule.
    theory_constant : float, default=1.0
        ``c`` in :func:`theory_lambda`.
    psd_floor : float, default=1e-3
    max_iter : int, default=10000
    tol : float, default=1e-12
        Solver settings (:func:`solve_group_lasso`).

    Notes
    -----
    Rotation-equivariant within groups: rotating a block of the representation by
    ``Q_S`` rotates ``beta_hat_S`` by ``Q_S^T`` and leaves predictions and group
    norms unchanged. ``rng`` (in :meth:`fit`) only shuffles the CV folds.
    """

    lam: float | str = "cv"
    n_folds: int = 5
    rule: str = "min"
    theory_constant: float = 1.0
    psd_floor: float = 1e-3
    max_iter: int = 10_000
    tol: float = 1e-12

    def __post_init__(self) -> None:
        if isinstance(self.lam, str):
            if self.lam not in ("cv", "theory"):
                raise ValidationError(
                    f"lam must be a non-negative float, 'cv' or 'theory'; got {self.lam!r}."
                )
        else:
            check_real(self.lam, "lam", low=0.0)
        check_int(self.n_folds, "n_folds", minimum=2)
        if self.rule not in ("min", "one_se"):
            raise ValidationError(f"rule must be 'min' or 'one_se'; got {self.rule!r}.")

    def fit(
        self, rep: Representation, data: DownstreamData, *, rng: Any = None
    ) -> DownstreamFit:
        """Fit on labelled data; returns a :class:`DownstreamFit`."""
        feats, y, fn = prepare(rep, data)
        groups = rep.groups()
        weights = np.array([math.sqrt(g.size) for g in groups])
        h, b, nf = moment_matrices(feats, y, fn, psd_floor=self.psd_floor)
        cv = None
        if self.lam == "cv":
            cv = cross_validate(
                feats, y, fn, groups, weights=weights, n_folds=self.n_folds,
                rule=self.rule, psd_floor=self.psd_floor, rng=rng,
            )
            lam = cv.best_fraction * lambda_max(b, groups, weights)
        elif self.lam == "theory":
            m, k = feats.shape
            ols = np.linalg.solve(h, b)
            resid = y - feats @ ols
            sd = math.sqrt(float(resid @ resid) / max(m - k, 1))
            lam = theory_lambda(
                sd, m, len(groups), min(g.size for g in groups),
                constant=self.theory_constant,
            )
        else:
            lam = float(self.lam)
        coef, info = solve_group_lasso(
            h, b, groups, lam, weights=weights, max_iter=self.max_iter, tol=self.tol
        )
        return DownstreamFit(
            coef, rep.structure, repr(self), lam, nf, info["n_iter"],
            info["converged"], cv,
        )


def _risk(a: NDArray, model: Any, beta: NDArray, s2y: float) -> float:
    """Population ``E (y - a^T x)^2`` for a linear predictor ``a`` (d,)."""
    w = np.asarray(model.loadings)
    phi = getattr(model, "latent_cov", None)
    phi = np.eye(w.shape[1]) if phi is None else np.asarray(phi)
    cov = model.covariance()
    return float(beta @ phi @ beta + s2y - 2.0 * a @ (w @ (phi @ beta)) + a @ cov @ a)


def evaluate(
    fit: DownstreamFit,
    rep: Representation,
    model: Any,
    beta: ArrayLike,
    *,
    noise_var_y: float = 0.1,
    test: DownstreamData | None = None,
) -> dict[str, float]:
    """Coefficient errors, excess risk and support recovery of a downstream fit.

    Parameters
    ----------
    fit : DownstreamFit
    rep : Representation
        The representation ``fit`` was computed on (aligned to the truth with
        :meth:`Representation.from_fit` ``(reference=model)`` for meaningful
        coefficient errors).
    model : HierarchicalFactorModel
        The truth.
    beta : array_like of shape (K,)
    noise_var_y : float, default=0.1
    test : DownstreamData, optional
        Fresh labelled rows for the empirical excess risk.

    Returns
    -------
    dict
        ``beta_error`` (``||beta_hat - beta||_2``), ``beta_error[<block>]`` per
        block (letters, e.g. ``beta_error[AB]``);
        ``excess_risk``: ``E[(a_hat^T x - a_or^T x)^2]``, the mean squared
        distance between the fitted predictor ``a_hat = C_hat^T beta_hat`` and the
        oracle predictor ``a_or = C^T beta`` (true representation, true
        ``beta``; the limit of the EIV estimator as ``n, m -> inf``), always
        ``>= 0``; ``excess_risk_test``: the same on the fresh ``test`` rows;
        ``risk_gap``: ``R(a_hat) - R(a_or)``, the reference code's definition
        (population), and ``risk_gap_test`` on ``test``; it can be negative
        because ``a_or`` is not the Bayes predictor when features are noisy;
        ``excess_risk_bayes``: ``R(a_hat) - R(E[y|x])``, always ``>= 0``;
        ``representation_error`` (``||C_hat W - I||_op``), ``support_precision``,
        ``support_recall``, ``support_exact`` (1 if the selected structures are
        exactly the relevant ones), ``n_selected`` and ``lam``.

    Notes
    -----
    Population risks are exact for Gaussian data: ``R(a) = beta^T Phi beta +
    sigma_y^2 - 2 a^T W Phi beta + a^T Sigma a`` for the linear predictor
    ``x -> a^T x``.

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
    >>> fit = ds.EIVRegression().fit(rep, data)
    >>> res = ds.evaluate(fit, rep, m, beta, noise_var_y=0.1)
    >>> round(res["representation_error"], 6), bool(res["beta_error"] < 0.05)
    (0.0, True)
    """
    beta = check_beta(beta, rep.total_rank)
    s2y = check_real(noise_var_y, "noise_var_y", low=0.0)
    structure = model.structure
    out: dict[str, float] = {}
    diff = fit.coef - beta
    out["beta_error"] = float(np.linalg.norm(diff))
    for b in structure.blocks:
        cols = structure.columns(b)
        out[f"beta_error[{format_block(b)}]"] = float(np.linalg.norm(diff[cols]))
    oracle = Representation.from_model(model)
    a_hat = rep.coef.T @ fit.coef
    a_or = oracle.coef.T @ beta
    w = np.asarray(model.loadings)
    phi = getattr(model, "latent_cov", None)
    phi = np.eye(w.shape[1]) if phi is None else np.asarray(phi)
    a_bayes = np.linalg.solve(model.covariance(), w @ (phi @ beta))
    cov = model.covariance()
    diff_a = a_hat - a_or
    out["excess_risk"] = float(diff_a @ cov @ diff_a)
    r_hat = _risk(a_hat, model, beta, s2y)
    out["risk_gap"] = r_hat - _risk(a_or, model, beta, s2y)
    out["excess_risk_bayes"] = r_hat - _risk(a_bayes, model, beta, s2y)
    if test is not None:
        e_hat = test.y - test.x @ a_hat
        e_or = test.y - test.x @ a_or
        out["risk_gap_test"] = float(np.mean(e_hat**2) - np.mean(e_or**2))
        out["excess_risk_test"] = float(np.mean((test.x @ diff_a) ** 2))
    out["representation_error"] = float(
        np.linalg.norm(rep.coef @ w - np.eye(w.shape[1]), 2)
    )
    true_sel = {b for b in structure.blocks if np.any(beta[structure.columns(b)] != 0)}
    est_sel = set(fit.selected())
    tp = len(true_sel & est_sel)
    out["support_precision"] = tp / len(est_sel) if est_sel else 1.0
    out["support_recall"] = tp / len(true_sel) if true_sel else 1.0
    out["support_exact"] = float(est_sel == true_sel)
    out["n_selected"] = float(len(est_sel))
    out["lam"] = float(fit.lam)
    return out

