"""Identifiability of the hierarchical factor model: exact generic verdicts.

The conditions, their proofs and counterexamples are in ``docs/identifiability.md``.
Each condition is reported with its *kind*:

``exact``
    Holds if and only if the design is generically locally identifiable up to the
    block rotations (the rank of the Jacobian of the parameter-to-covariance map
    at a generic point; Theorem 1 of the docs). This decides
    :attr:`IdentifiabilityReport.identifiable`.
``necessary``
    If it fails, two different parameter sets give the same covariance.
``sufficient``
    Guarantees more than the exact condition: together with the other sufficient
    conditions, *global* identification and an exact closed form (the bottom-up
    Schur recursion of :class:`~hcl_stats.estimators.SchurComplement`). Failing it
    does not by itself prove non-identifiability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._jacobian import (
    PRIMES,
    JacobianRank,
    Layout,
    decide_rank,
    direct_is_cheap,
    hall_witness,
    jacobian_rank,
    latent_block_verdicts,
    rank_mod_p,
    require_schur_step,
    schur_rank,
)
from ._validation import (
    as_generator,
    check_choice,
    check_dims,
    check_memory,
    check_real,
)
from .exceptions import NotIdentifiableError, ValidationError
from .structure import Structure, format_block

__all__ = [
    "PRIMES",
    "Condition",
    "IdentifiabilityReport",
    "JacobianRank",
    "check_identifiable",
    "jacobian_rank",
    "latent_block_verdicts",
    "rank_mod_p",
    "require_schur_step",
    "schur_rank",
]


#: Registry names exact at the population level whenever the Schur route applies
#: (the noise gap and ``schur_matching`` hold); verified by hcl_stats.testing.
SCHUR_EXACT = ("masked_gradient", "masked_shrink", "schur", "schur_shrink")


#: Registry name of the estimator for every locally identifiable design.
MULTISTART = "masked_multistart"


@dataclass(frozen=True)
class Condition:
    """One identifiability condition and whether it holds.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``'jacobian_rank'``.
    holds : bool
    kind : {'exact', 'necessary', 'sufficient'}
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

    def to_dict(self) -> dict[str, Any]:
        """``{name, holds, kind, reason}`` (the JSON form of the CLI)."""
        return {"name": self.name, "holds": bool(self.holds), "kind": self.kind,
                "reason": self.reason}


@dataclass(frozen=True)
class IdentifiabilityReport:
    """Result of :func:`check_identifiable`.

    Attributes
    ----------
    conditions : tuple of Condition
    exact_estimators : tuple of str
        Registry names of the estimators that recover every block Gram from the
        population covariance of a generic model with this design (see
        :func:`check_identifiable`, Notes).
    block_verdicts : dict
        ``block -> bool``: whether the block's covariance contribution is
        identified (generic, for the latent-correlation pattern of a model; every
        block equals ``identifiable`` otherwise).
    """

    conditions: tuple[Condition, ...]
    exact_estimators: tuple[str, ...] = ()
    block_verdicts: dict[frozenset[int], bool] = field(default_factory=dict)

    @property
    def identifiable(self) -> bool:
        """True iff every ``exact`` and ``necessary`` condition holds."""
        return all(c.holds for c in self.conditions if c.kind in ("exact", "necessary"))

    @property
    def failures(self) -> tuple[Condition, ...]:
        """Conditions that do not hold."""
        return tuple(c for c in self.conditions if not c.holds)

    def __bool__(self) -> bool:
        return self.identifiable

    def raise_if_failed(self) -> None:
        """Raise :class:`NotIdentifiableError` if the design is not identifiable."""
        if not self.identifiable:
            lines = "; ".join(
                f"[{c.kind}] {c.reason}" for c in self.failures if c.kind != "sufficient"
            )
            raise NotIdentifiableError(f"identifiability conditions fail: {lines}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``identifiable``, ``exact_estimators``, ``conditions``.

        Examples
        --------
        >>> import hcl_stats as hs
        >>> d = hs.check_identifiable("AB:1 A:1", dims=(3, 3)).to_dict()
        >>> sorted(d)
        ['block_verdicts', 'conditions', 'exact_estimators', 'identifiable']
        """
        return {
            "identifiable": bool(self.identifiable),
            "exact_estimators": list(self.exact_estimators),
            "conditions": [c.to_dict() for c in self.conditions],
            "block_verdicts": {
                format_block(b): bool(v) for b, v in self.block_verdicts.items()
            },
        }

    def __str__(self) -> str:
        verdict = (
            "identified (generic local identifiability holds)" if self.identifiable
            else "NOT identified (an exact or necessary condition fails)"
        )
        lines = [f"Identifiability: {verdict}"]
        for c in self.conditions:
            mark = "ok  " if c.holds else "FAIL"
            lines.append(f"  [{mark}] {c.name} ({c.kind}): {c.reason}")
        names = ", ".join(self.exact_estimators) or "none"
        lines.append(f"  exact estimators at the population level: {names}")
        return "\n".join(lines)


def check_identifiable(
    structure_or_model: Any,
    dims: Sequence[int] | None = None,
    *,
    noise: str = "scalar",
    tol: float = 1e-8,
    rng: Any = 0,
) -> IdentifiabilityReport:
    """Decide generic identifiability of a design, and check a model numerically.

    Parameters
    ----------
    structure_or_model : Structure, str or HierarchicalFactorModel
        A structure (text form accepted) with ``dims``, or a model, in which case
        the design conditions are complemented by numerical rank checks of its
        loadings and by a per-block verdict for its latent covariance.
    dims : sequence of int, optional
        ``(d_1, ..., d_M)``; required with a structure, taken from a model.
    noise : {'scalar', 'per_view'}, default='scalar'
        Noise model: one ``sigma^2`` or one ``sigma_m^2`` per view (for a known
        noise use :func:`jacobian_rank` with ``noise='known'``).
    tol : float, default=1e-8
        Relative singular-value threshold of the numerical checks of a model.
    rng : None, int, SeedSequence or Generator, default=0
        Random points of the rank computations (fixed by default).

    Returns
    -------
    IdentifiabilityReport
        Truthy iff the design is generically locally identifiable up to the block
        rotations (and, for a model, its numerical checks pass).

    Notes
    -----
    Conditions (``k_m = sum_{S contains m} r_S``; proofs in
    docs/identifiability.md):

    * ``block_rank`` (necessary): ``r_S <= d_S``; for a model, ``rank W^S = r_S``.
    * ``jacobian_rank`` (exact): the generic rank of the Jacobian of
      ``(W, noise) -> vech(Sigma)`` equals ``#params - sum_S r_S (r_S - 1) / 2``
      (Theorem 1), decided over a prime field (certified when it holds).
    * ``noise_rank_gap`` (sufficient): ``d > K`` (scalar) or ``d_m > k_m``
      (per view): ``sigma^2`` is then the bottom eigenvalue (Proposition 2).
    * ``schur_matching`` (sufficient): for every block, the loadings of the views
      outside it on the blocks meeting them have generic full column rank ``k_O``,
      a maximum-matching (Hall) condition (Theorem 3). With ``noise_rank_gap``
      it gives global identification and exact closed forms (Theorem 4).
    * ``latent_correlation`` (models with a latent covariance): every block's
      contribution is identified under the model's pattern of cross-block
      correlations (Theorem 5); ``block_verdicts`` gives the per-block answer.

    ``exact_estimators``: the Schur route's estimators when ``noise_rank_gap`` and
    ``schur_matching`` hold; ``masked_multistart`` whenever the design is
    identifiable (it certifies a population fit by a zero loss; Theorem 6 says
    what that certificate proves).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> report = hs.check_identifiable("ABC:3 AB:2 C:1", dims=(10, 10, 10))
    >>> report.identifiable
    True
    >>> hs.check_identifiable("AB:3 A:1", dims=(1, 1)).identifiable
    False
    >>> r = hs.check_identifiable("AB:2 B:2 A:1 C:1", dims=(10, 3, 10))
    >>> r.identifiable, r.exact_estimators
    (True, ('masked_multistart',))
    """
    from .model import HierarchicalFactorModel

    noise = check_choice(noise, "noise", ("scalar", "per_view"))
    tol = check_real(tol, "tol", low=0.0, low_open=True, high=1.0, high_open=True)
    model = None
    if isinstance(structure_or_model, HierarchicalFactorModel):
        model = structure_or_model
        structure = model.structure
        if dims is not None and check_dims(dims) != tuple(model.dims):
            raise ValidationError(
                f"dims must be the model's dims {tuple(model.dims)} (or None) when "
                f"checking a model; got {tuple(dims)}."
            )
        dims = model.dims
    else:
        if dims is None:
            raise ValidationError("dims must be given when checking a structure.")
        dims = check_dims(dims)
        structure = Structure.coerce(structure_or_model, len(dims))
    dims = structure._check_dims(dims)
    # the conditions index the d x K loading pattern (a bool mask and its nonzeros)
    check_memory(sum(dims) * structure.total_rank * 17,
                 f"check_identifiable with d = {sum(dims)} and K = {structure.total_rank}",
                 fix="Use smaller dims or ranks.")
    gen = as_generator(rng)
    block_rank = _block_rank_condition(structure, dims, model, tol)
    jac = _jacobian_condition(structure, dims, noise, gen)
    gap = _noise_condition(structure, dims, noise)
    schur = _schur_condition(structure, dims, model, tol)
    conds = [block_rank, jac, gap, schur]
    if (model is not None and jac.holds and block_rank.holds
            and direct_is_cheap(structure, dims, noise)):
        conds.insert(2, _model_jacobian_condition(model, noise, tol))
    verdicts = {b: jac.holds and block_rank.holds for b in structure.blocks}
    if model is not None and model.latent_cov is not None:
        latent, verdicts = _latent_condition(model, noise, gen, verdicts)
        conds.append(latent)
    identifiable = all(c.holds for c in conds if c.kind in ("exact", "necessary"))
    exact: tuple[str, ...] = ()
    if identifiable:
        exact = (MULTISTART,)
        if gap.holds and schur.holds:
            exact = tuple(sorted((*SCHUR_EXACT, MULTISTART)))
    return IdentifiabilityReport(tuple(conds), exact, verdicts)


def _jacobian_condition(structure: Structure, dims, noise: str, gen) -> Condition:
    jr = decide_rank(structure, dims, noise, gen)
    what = {"scalar": "one sigma^2", "per_view": "one sigma_m^2 per view",
            "known": "known noise"}[noise]
    head = (
        f"{jr.n_params} free parameters ({what}) - {jr.n_rotations} rotation "
        f"dimensions = {jr.target}"
    )
    if jr.method == "count":
        reason = (f"{head} > d(d+1)/2 = {jr.n_moments} distinct entries of Sigma, so "
                  "the Jacobian cannot reach that rank (certified by counting)")
    elif jr.full and jr.method == "schur":
        how = ("implied by the Schur route (noise gap and matching condition, "
               "Theorem 4; certified)")
        reason = f"generic Jacobian rank = {head}; {how}"
    elif jr.full and jr.method == "padding":
        reason = (f"generic Jacobian rank = {head}; certified on smaller dims and "
                  "extended to these by Lemma 7 (padding rows)")
    elif jr.full:
        how = ("exact rank over F_p at a random integer point (certified)"
               if jr.certified else "numerical rank with a clear singular-value gap")
        reason = f"generic Jacobian rank {jr.rank} = {head}; {how}"
    if not jr.full and jr.method != "count":
        how = (f"rank over F_p at {2} random points; probability of a false verdict "
               f"<= {jr.error_bound:.1e}" if jr.method == "exact"
               else "numerical rank at 2 random points, clear singular-value gap")
        reason = (f"generic Jacobian rank {jr.rank} < {head}: a "
                  f"{jr.target - jr.rank}-dimensional family of parameters with the "
                  f"same Sigma passes through a generic point ({how})")
    return Condition(
        "jacobian_rank", jr.full, "exact",
        "rank d vech(Sigma)/d(W, noise) = #params - sum_S r_S(r_S - 1)/2 at a generic "
        "point", reason,
    )


def _model_jacobian_condition(model, noise: str, tol: float) -> Condition:
    """First-order local identifiability at the model's own parameters (numerical)."""
    lay = Layout(model.structure, model.dims, noise)
    w = np.asarray(model.loadings, dtype=float)
    if model.latent_cov is not None:  # whiten inside blocks; cross-block terms are
        w = w.copy()                  # judged by latent_correlation
        for b in model.structure.blocks:
            c = model.structure.columns(b)
            vals, vecs = np.linalg.eigh(np.asarray(model.latent_cov)[c, c])
            w[:, c] = w[:, c] @ (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    target = lay.n_params - lay.n_rotations()
    sv = np.linalg.svd(lay.jacobian_t(w, np.eye(lay.k), None), compute_uv=False)
    ratio = float(sv[target - 1] / sv[0]) if target and sv[0] > 0 else 1.0
    ok = ratio > tol
    reason = (
        f"the Jacobian at the model's parameters has full rank {target} (relative "
        f"smallest singular value {ratio:.3g} > tol = {tol:.1e})" if ok else
        f"the Jacobian at the model's parameters is numerically rank-deficient "
        f"(relative singular value {ratio:.3g} <= tol = {tol:.1e} at rank {target}): "
        "Sigma is flat to first order along a direction that is not a block rotation, "
        "so this model is not (or only barely) identified"
    )
    return Condition(
        "jacobian_rank_at_model", ok, "necessary",
        "numerical: the Jacobian at the model's own parameters has rank "
        "#params - sum_S r_S(r_S - 1)/2", reason,
    )


def _noise_condition(structure: Structure, dims, noise: str) -> Condition:
    names = structure.names
    if noise == "known":
        return Condition("noise_rank_gap", True, "sufficient", "noise known",
                         "the noise variance is known")
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
        rank, k_o = schur_rank(structure, dims, b)
        o_names = ",".join(names[m] for m in outside)
        if rank < k_o:
            problems.append(
                f"for block {format_block(b)}: the loadings of the views outside it "
                f"({o_names}) on the blocks meeting them have generic column rank "
                f"{rank} < k_O = {k_o} (maximum matching){hall_witness(structure, dims, b)}"
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
        "schur_matching",
        not problems,
        "sufficient",
        "for every block S with outside views O: the loadings of O on the blocks "
        "meeting O have generic full column rank k_O (a maximum matching of size k_O "
        "between the d_m rows of the views and the r_T columns of the blocks)",
        reason,
    )


def _latent_condition(model, noise: str, gen, verdicts) -> tuple[Condition, dict]:
    """Per-block verdict from the pattern of cross-block latent correlations."""
    s = model.structure
    cov = np.asarray(model.latent_cov, dtype=float)
    whiten = {}
    for b in s.blocks:
        c = s.columns(b)
        vals, vecs = np.linalg.eigh(cov[c, c])
        if vals[0] <= 1e-12 * max(vals[-1], np.finfo(float).tiny):
            verdicts = dict.fromkeys(verdicts, False)
            return Condition(
                "latent_correlation", False, "necessary",
                "every block contribution W^S R_SS W^S^T identified",
                f"Cov(z) restricted to block {format_block(b)} is singular (smallest "
                f"eigenvalue {vals[0]:.3g}): its rank r_S is not identified",
            ), verdicts
        whiten[b] = (vecs / np.sqrt(vals)) @ vecs.T
    pairs = []
    for i, b in enumerate(s.blocks):
        for t in s.blocks[i + 1 :]:
            corr = whiten[b] @ cov[s.columns(b), s.columns(t)] @ whiten[t]
            if np.max(np.abs(corr)) > 1e-10:
                pairs.append((b, t))
    if not pairs:
        return Condition(
            "latent_correlation", True, "necessary",
            "every block contribution W^S R_SS W^S^T identified",
            "Cov(z) is block-diagonal: correlation inside a block is absorbed by "
            "W^S R_SS^{1/2}, so every block contribution is identified as for "
            "uncorrelated latents",
        ), verdicts
    per = latent_block_verdicts(s, model.dims, pairs, noise=noise, rng=gen)
    per = {b: per[b] and verdicts[b] for b in s.blocks}
    bad = [format_block(b) for b in s.blocks if not per[b]]
    corr_txt = ", ".join(f"{format_block(a)}~{format_block(b)}" for a, b in pairs)
    nested = [f"{format_block(a)}~{format_block(b)}" for a, b in pairs if a < b or b < a]
    note = (f"; nested pairs {', '.join(nested)} are absorbed by a block-triangular "
            "transformation" if nested else "")
    reason = (
        f"latents correlate across blocks ({corr_txt}); "
        + (f"not identified: {', '.join(bad)}" if bad else "every block still identified")
        + note
    )
    return Condition(
        "latent_correlation", not bad, "necessary",
        "every block contribution W^S R_SS W^S^T identified under the model's pattern "
        "of cross-block correlations", reason,
    ), per
