"""Identifiability conditions of the hierarchical factor model.

The conditions, their proofs and counterexamples are in ``docs/identifiability.md``.
Each condition is reported with its *kind*:

``necessary``
    If it fails, two different parameter sets (or two estimators' targets) give the
    same covariance: the quantity is not identified.
``sufficient``
    Together with the other sufficient conditions it guarantees that the
    covariance determines ``sigma^2`` and every block Gram ``W^S W^S^T``; it is
    also exactly what :class:`~hcl_stats.estimators.SchurComplement` needs.
    Failing it does not by itself prove non-identifiability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_choice, check_dims
from .exceptions import NotIdentifiableError, ValidationError
from .structure import Structure, format_block

__all__ = ["Condition", "IdentifiabilityReport", "check_identifiable"]


@dataclass(frozen=True)
class Condition:
    """One identifiability condition and whether it holds.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``'noise_rank_gap'``.
    holds : bool
    kind : {'necessary', 'sufficient'}
    statement : str
        The condition in words and symbols.
    reason : str
        Why it holds or fails, with the numbers involved.
    """

    name: str
    holds: bool
    kind: str
    statement: str
    reason: str


@dataclass(frozen=True)
class IdentifiabilityReport:
    """Result of :func:`check_identifiable`.

    Attributes
    ----------
    conditions : tuple of Condition
    """

    conditions: tuple[Condition, ...]

    @property
    def identifiable(self) -> bool | None:
        """True if all conditions hold, False if a necessary one fails, else None."""
        if all(c.holds for c in self.conditions):
            return True
        if any(not c.holds and c.kind == "necessary" for c in self.conditions):
            return False
        return None

    @property
    def failures(self) -> tuple[Condition, ...]:
        """Conditions that do not hold."""
        return tuple(c for c in self.conditions if not c.holds)

    def __bool__(self) -> bool:
        return self.identifiable is True

    def raise_if_failed(self) -> None:
        """Raise :class:`NotIdentifiableError` listing every failed condition."""
        if self.failures:
            lines = "; ".join(f"[{c.kind}] {c.reason}" for c in self.failures)
            raise NotIdentifiableError(f"identifiability conditions fail: {lines}")

    def __str__(self) -> str:
        verdict = {
            True: "identified (all sufficient conditions hold)",
            False: "NOT identified (a necessary condition fails)",
            None: "not guaranteed (a sufficient condition fails)",
        }[self.identifiable]
        lines = [f"Identifiability: {verdict}"]
        for c in self.conditions:
            mark = "ok  " if c.holds else "FAIL"
            lines.append(f"  [{mark}] {c.name} ({c.kind}): {c.reason}")
        return "\n".join(lines)


def check_identifiable(
    structure_or_model: Any,
    dims: Sequence[int] | None = None,
    *,
    noise: str = "scalar",
    tol: float = 1e-8,
) -> IdentifiabilityReport:
    """Check the identifiability conditions for a structure and dims, or a model.

    Parameters
    ----------
    structure_or_model : Structure, str or HierarchicalFactorModel
        A structure (text form accepted) with ``dims``, or a model, in which case
        the generic dimension conditions are complemented by numerical rank checks
        of its loadings and by the latent covariance.
    dims : sequence of int, optional
        ``(d_1, ..., d_M)``; required with a structure, taken from a model.
    noise : {'scalar', 'per_view'}, default='scalar'
        Which noise model's conditions to check.
    tol : float, default=1e-8
        Relative singular-value threshold of the numerical rank checks.

    Returns
    -------
    IdentifiabilityReport
        Truthy only if every condition holds.

    Notes
    -----
    Conditions (``k_m = sum_{S contains m} r_S``; for a block ``S`` with views
    ``O`` outside it, ``k_O = sum_{T meets O} r_T``; proofs in
    docs/identifiability.md):

    * ``noise_rank_gap`` (sufficient): ``d > K`` (scalar noise) or ``d_m > k_m`` for
      every view (per-view noise); then ``sigma^2`` is the bottom eigenvalue.
    * ``block_rank`` (necessary): ``r_S <= d_S = sum_{m in S} d_m``, else ``W^S``
      cannot have rank ``r_S`` and ``r_S`` is not identified; for a model, the
      numerical rank of ``W^S`` is ``r_S``.
    * ``schur_conditioning`` (sufficient): for every block with ``O`` non-empty,
      ``d_O >= k_O``; for a model, the loadings of the views in ``O`` on the blocks
      meeting ``O`` have full column rank ``k_O``.
    * ``uncorrelated_latents`` (necessary; models only): ``Cov(z) = I``.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> report = hs.check_identifiable("ABC:3 AB:2 C:1", dims=(10, 10, 10))
    >>> report.identifiable
    True
    >>> hs.check_identifiable("AB:3 A:1", dims=(1, 1)).identifiable
    False
    """
    from .model import HierarchicalFactorModel

    noise = check_choice(noise, "noise", ("scalar", "per_view"))
    model = None
    if isinstance(structure_or_model, HierarchicalFactorModel):
        model = structure_or_model
        structure = model.structure
        dims = model.dims
    else:
        if dims is None:
            raise ValidationError("dims must be given when checking a structure.")
        dims = check_dims(dims)
        structure = Structure.coerce(structure_or_model, len(dims))
    dims = structure._check_dims(dims)
    conds = [_noise_condition(structure, dims, noise)]
    conds.append(_block_rank_condition(structure, dims, model, tol))
    conds.append(_schur_condition(structure, dims, model, tol))
    if model is not None:
        conds.append(_latent_condition(model))
    return IdentifiabilityReport(tuple(conds))


def _noise_condition(structure: Structure, dims, noise: str) -> Condition:
    names = structure.names
    if noise == "scalar":
        d, k = sum(dims), structure.total_rank
        ok = d > k
        reason = (
            f"d = {d} > K = {k}" if ok
            else f"d = {d} <= K = {k}: no eigenvalue of Sigma is guaranteed to equal "
            "sigma^2"
        )
        return Condition("noise_rank_gap", ok, "sufficient", "d > K", reason)
    bad = [
        f"view {names[m]} has d_{m + 1} = {dm} <= k_{m + 1} = {structure.view_rank(m)} "
        "(total rank of its blocks)"
        for m, dm in enumerate(dims)
        if dm <= structure.view_rank(m)
    ]
    reason = "; ".join(bad) if bad else "every view has d_m > k_m"
    return Condition(
        "noise_rank_gap", not bad, "sufficient", "d_m > k_m for every view m", reason
    )


def _block_rank_condition(structure: Structure, dims, model, tol: float) -> Condition:
    problems = []
    for b, r in zip(structure.blocks, structure.ranks, strict=True):
        d_s = sum(dims[m] for m in b)
        if r > d_s:
            problems.append(
                f"block {format_block(b)} has rank {r} > d_S = {d_s} rows"
            )
        elif model is not None:
            rows = np.concatenate([np.arange(*_rows(dims, m)) for m in sorted(b)])
            sv = np.linalg.svd(
                np.asarray(model.loadings)[rows][:, structure.columns(b)], compute_uv=False
            )
            if sv[-1] <= tol * max(sv[0], np.finfo(float).tiny):
                problems.append(
                    f"W^{format_block(b)} has numerical rank < {r} (singular values "
                    f"{sv[0]:.3g} ... {sv[-1]:.3g})"
                )
    reason = "; ".join(problems) if problems else "every block W^S can have rank r_S"
    return Condition(
        "block_rank", not problems, "necessary", "rank(W^S) = r_S <= d_S", reason
    )


def _rows(dims, m: int) -> tuple[int, int]:
    off = int(sum(dims[:m]))
    return off, off + dims[m]


def _schur_condition(structure: Structure, dims, model, tol: float) -> Condition:
    problems = []
    names = structure.names
    for b in structure.blocks:
        outside = [m for m in range(len(dims)) if m not in b]
        if not outside:
            continue
        meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
        if not meets:
            continue
        k_o = sum(structure.rank_of(t) for t in meets)
        d_o = sum(dims[m] for m in outside)
        o_names = ",".join(names[m] for m in outside)
        if d_o < k_o:
            problems.append(
                f"for block {format_block(b)}: the views outside it ({o_names}) have "
                f"d_O = {d_o} < k_O = {k_o} (total rank of the blocks they load on)"
            )
        elif model is not None:
            rows = np.concatenate([np.arange(*_rows(dims, m)) for m in outside])
            cols = np.concatenate(
                [np.arange(structure.columns(t).start, structure.columns(t).stop) for t in meets]
            )
            sv = np.linalg.svd(np.asarray(model.loadings)[np.ix_(rows, cols)], compute_uv=False)
            if sv[-1] <= tol * max(sv[0], np.finfo(float).tiny):
                problems.append(
                    f"for block {format_block(b)}: loadings of views {o_names} on the "
                    f"blocks meeting them are rank-deficient (smallest singular value "
                    f"{sv[-1]:.3g}, largest {sv[0]:.3g})"
                )
    reason = (
        "; ".join(problems) if problems
        else "every block can be isolated by conditioning on the views outside it"
    )
    return Condition(
        "schur_conditioning",
        not problems,
        "sufficient",
        "for every block S with outside views O: loadings of O on blocks meeting O "
        "have full column rank k_O (needs d_O >= k_O)",
        reason,
    )


def _latent_condition(model) -> Condition:
    cov = model.latent_cov
    if cov is None or np.allclose(cov, np.eye(cov.shape[0]), rtol=0, atol=1e-12):
        return Condition(
            "uncorrelated_latents", True, "necessary", "Cov(z) = I_K", "Cov(z) = I_K"
        )
    off = cov - np.diag(np.diag(cov))
    return Condition(
        "uncorrelated_latents",
        False,
        "necessary",
        "Cov(z) = I_K",
        f"Cov(z) is not the identity (largest |off-diagonal| = {np.max(np.abs(off)):.3g}, "
        f"diagonal range [{np.min(np.diag(cov)):.3g}, {np.max(np.diag(cov)):.3g}]); with "
        "a free Cov(z), (W, Cov(z)) and (W G, G^-1 Cov(z) G^-T) give the same Sigma "
        "for every invertible block-triangular G",
    )
