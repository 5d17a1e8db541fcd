"""Labelled downstream data: ``y = z^T beta + eps_y`` (and the logistic variant) (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import as_generator, check_float_array, check_int, check_real
from ..exceptions import ValidationError
from ..structure import Structure

__all__ = ["DownstreamData", "as_block", "check_beta", "make_beta", "sample_downstream", "sample_downstream_logistic"]


@dataclass(frozen=True, eq=False)
class DownstreamData:
    """Labelled downstream sample.

    Parameters
    ----------
    x : ndarray of shape (m, d)
        Stacked views.
    y : ndarray of shape (m,)
        Responses.
    z : ndarray of shape (m, K) or None
        Latent factors (simulation only; never used by an estimator).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        x = check_float_array(self.x, "x", ndim=2)
        y = check_float_array(self.y, "y", ndim=1)
        if y.shape[0] != x.shape[0]:
            raise ValidationError(
                f"y must have one entry per row of x ({x.shape[0]}); got {y.shape[0]}."
            )
        for name, a in (("x", x), ("y", y)):
            a = np.array(a, dtype=float, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.z is not None:
            z = np.array(self.z, dtype=float, copy=True)
            z.setflags(write=False)
            object.__setattr__(self, "z", z)

    @property
    def n_samples(self) -> int:
        """Number of labelled rows ``m``."""
        return int(self.x.shape[0])

    def subset(self, rows: ArrayLike) -> DownstreamData:
        """Rows ``rows`` as a new object."""
        idx = np.asarray(rows, dtype=np.intp)
        return DownstreamData(
            self.x[idx], self.y[idx], None if self.z is None else self.z[idx]
        )


def make_beta(
    structure: Structure,
    *,
    relevant: Sequence[Any] | None = None,
    rng: Any = None,
) -> NDArray[np.float64]:
    """Draw a coefficient vector as in the reference code, optionally group-sparse.

    Entries are Uniform(0, 1) on the relevant blocks, zero elsewhere, and the
    vector is scaled to unit norm (paper.md §3, step 6).

    Parameters
    ----------
    structure : Structure
    relevant : sequence of blocks, optional
        Blocks ``S`` (iterables of view indices, or text like ``"AB"``) with
        ``beta_S != 0``; all blocks if None.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    ndarray of shape (K,)

    Examples
    --------
    >>> import hcl_stats as hs
    >>> s = hs.Structure.parse("AB:2 A:1 B:1")
    >>> beta = make_beta(s, relevant=["A"], rng=0)
    >>> beta[:2].tolist(), float(beta @ beta)
    ([0.0, 0.0], 1.0)
    """
    gen = as_generator(rng)
    beta = gen.uniform(0.0, 1.0, size=structure.total_rank)
    if relevant is not None:
        keep = np.zeros(structure.total_rank, dtype=bool)
        for blk in relevant:
            b = as_block(blk, structure)
            keep[structure.columns(b)] = True
        beta = np.where(keep, beta, 0.0)
    norm = float(np.linalg.norm(beta))
    if norm == 0.0:
        raise ValidationError("relevant must name at least one block.")
    return beta / norm


def as_block(blk: Any, structure: Structure) -> frozenset[int]:
    if isinstance(blk, str):
        b = frozenset(ord(c) - ord("A") for c in blk.strip().upper())
    else:
        try:
            b = frozenset(int(v) for v in blk)
        except (TypeError, ValueError):
            b = frozenset()
    if b not in structure.blocks:
        raise ValidationError(
            f"relevant blocks must be blocks of the structure {structure}; got "
            f"{blk!r}."
        )
    return b


def sample_downstream(
    model: Any,
    beta: ArrayLike,
    n_samples: int,
    *,
    noise_var_y: float = 0.1,
    rng: Any = None,
) -> DownstreamData:
    """Draw ``m`` labelled rows ``(x, y)`` with ``y = z^T beta + eps_y``.

    Parameters
    ----------
    model : HierarchicalFactorModel
        Gives ``W``, the noise and (optionally) ``Cov(z)``.
    beta : array_like of shape (K,)
    n_samples : int
        ``m``.
    noise_var_y : float, default=0.1
        ``sigma_y^2`` (the reference code's ``c_y``).
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    DownstreamData
        With the latent ``z`` kept for oracle computations.

    Notes
    -----
    Draws, in order, standard normals of shapes ``(m, K)``, ``(m, d)`` and
    ``(m,)`` and multiplies them by explicit factors.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.downstream import sample_downstream
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> beta = np.array([1.0, 0.0, 0.5])
    >>> data = sample_downstream(m, beta, 2000, noise_var_y=0.1, rng=0)
    >>> data.x.shape, data.z.shape
    ((2000, 9), (2000, 3))
    >>> round(float(np.var(data.y - data.z @ beta)), 2)  # sigma_y^2
    0.1
    """
    m = check_int(n_samples, "n_samples", minimum=2)
    beta = check_beta(beta, model.structure.total_rank)
    s2y = check_real(noise_var_y, "noise_var_y", low=0.0)
    gen = as_generator(rng)
    w = np.asarray(model.loadings, dtype=float)
    z = gen.standard_normal((m, w.shape[1]))
    phi = getattr(model, "latent_cov", None)
    if phi is not None:
        vals, vecs = np.linalg.eigh(np.asarray(phi))
        z = z @ (vecs * np.sqrt(np.clip(vals, 0.0, None))).T
    e = gen.standard_normal((m, w.shape[0])) * np.sqrt(model.noise_diagonal())
    x = z @ w.T + e
    y = z @ beta + math.sqrt(s2y) * gen.standard_normal(m)
    return DownstreamData(x, y, z)


def check_beta(beta: ArrayLike, k: int) -> NDArray[np.float64]:
    beta = check_float_array(beta, "beta", ndim=1)
    if beta.shape[0] != k:
        raise ValidationError(
            f"beta must have K = {k} entries (one per latent); got {beta.shape[0]}."
        )
    return beta


def sample_downstream_logistic(
    model: Any,
    beta: ArrayLike,
    n_samples: int,
    *,
    latent_noise_var: float = 0.0,
    rng: Any = None,
) -> DownstreamData:
    """Binary labels ``y ~ Bernoulli(sigmoid(z^T beta + e))``, ``e ~ N(0, s^2)``.

    The reference code's ``generate_logistic_data`` uses ``s^2 = 6`` (paper.md §3,
    step 6); the default here is 0 (a plain logistic model).

    Parameters
    ----------
    model : HierarchicalFactorModel
    beta : array_like of shape (K,)
    n_samples : int
    latent_noise_var : float, default=0
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    DownstreamData
        ``y`` in {0, 1}.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.downstream import sample_downstream_logistic
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> data = sample_downstream_logistic(m, np.array([1.0, 0.0, 0.5]), 500, rng=0)
    >>> np.unique(data.y).tolist(), data.y.shape
    ([0.0, 1.0], (500,))
    """
    s2 = check_real(latent_noise_var, "latent_noise_var", low=0.0)
    gen = as_generator(rng)
    base = sample_downstream(model, beta, n_samples, noise_var_y=0.0, rng=gen)
    eta = base.y + math.sqrt(s2) * gen.standard_normal(base.n_samples)
    prob = 1.0 / (1.0 + np.exp(-eta))
    y = (gen.uniform(size=base.n_samples) < prob).astype(float)
    return DownstreamData(base.x, y, base.z)
