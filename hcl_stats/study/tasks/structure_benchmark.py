"""Study task ``structure_benchmark``: structure learners on random, above-edge and null designs.

Imported by :mod:`hcl_stats.study.tasks`. Every replicate draws a fresh family
of blocks (each non-empty subset of the ``M`` views present independently with
probability ``p_present``, all of rank ``rank``), redrawn until the refit can fit
it (:func:`~hcl_stats.estimators.fittable.make_fittable` changes nothing), so a
learner that finds the truth is never forced to lower it. ``design`` selects:

``"random"``
    Singular values ``U(singular_values)``: blocks may sit below their detection
    edge (weak designs) or far above it (strong designs).
``"above_edge"``
    As ``"random"``, then each block ``S`` whose smallest spike (eigenvalue of
    ``W^S W^S^T``) is below ``edge_margin`` times its restricted edge
    ``sigma^2 sqrt(d_S / (n - 1 - k_O))`` (:func:`~hcl_stats.block_evidence.detection_edge`;
    ``k_O`` is the total rank of the blocks that meet a view outside ``S``) is
    scaled up so that its smallest spike equals that bound.
``"noise"``
    No block at all: ``x ~ N(0, sigma^2 I_d)``. Every block a learner selects is a
    false positive.

A learner that selects no block is not a failure here: its fit is recorded as
:class:`NoBlocks` (zero loadings), scored 0 on recovery and 1 on the relative
Gram error, and as a true negative under ``"noise"``. Metrics: ``selection``
(recovery scores, or the false-positive indicator under the null) and
``oracle_gram_rel`` (relative error of ``W W^T``, which uses the truth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...exceptions import NoStructureError
from ..registry import (
    STREAM_DATA,
    STREAM_MODEL,
    Draw,
    Task,
    default_analyse,
    get_task,
    register_metric,
    register_task,
)
from . import recovery

__all__ = ["NoBlocks", "NoiseTruth", "fittable_family", "lift_to_edge", "true_model"]

DESIGNS = ("random", "above_edge", "noise")


@dataclass(frozen=True)
class NoiseTruth:
    """The truth of a ``"noise"`` cell: no block, noise variance ``sigma^2``."""

    dims: tuple[int, ...]
    noise_var: float


@dataclass(frozen=True)
class NoBlocks:
    """The outcome of a learner that selected no block (``W = 0``).

    Parameters
    ----------
    dims : tuple of int
    reason : str
        The learner's message.
    """

    dims: tuple[int, ...]
    reason: str
    structure: None = None


def fittable_family(dims: tuple[int, ...], rank: int, p_present: float,
                    rng: np.random.Generator, max_draws: int = 10_000):
    """A random family of blocks of rank ``rank`` that the refit can fit.

    Each non-empty subset of views is present with probability ``p_present``;
    families that are empty or that :func:`~hcl_stats.estimators.fittable.make_fittable`
    would lower are redrawn.

    Raises
    ------
    ValueError
        If ``max_draws`` draws give no such family.

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.study.tasks.structure_benchmark import fittable_family
    >>> s = fittable_family((6, 6, 6), 2, 0.6, np.random.default_rng(0))
    >>> all(sum(r for b, r in zip(s.blocks, s.ranks) if m in b) < 6 for m in range(3))
    True
    """
    from ...estimators.fittable import make_fittable
    from .structure_recovery import random_family

    for _ in range(max_draws):
        s = random_family(len(dims), rank, p_present, rng)
        fitted, changes = make_fittable(s, tuple(dims))
        if fitted is not None and not changes:
            return s
    raise ValueError(f"a fittable family within {max_draws} draws (dims too small for rank)")


def lift_to_edge(model: Any, n_samples: int, margin: float):
    """Scale each block of ``model`` up to ``margin`` times its restricted edge.

    Block ``S`` has spikes (eigenvalues of ``W^S W^S^T``); if the smallest is below
    ``margin * sigma^2 sqrt(d_S / (n - 1 - k_O))``, ``W^S`` is multiplied by the
    square root of their ratio. Blocks already above are unchanged.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.tasks.structure_benchmark import lift_to_edge, block_margins
    >>> m = hs.HierarchicalFactorModel.random((10, 12), "AB:1 A:1",
    ...                                       singular_values=(0.1, 0.2), rng=0)
    >>> [round(v, 6) for v in block_margins(lift_to_edge(m, 500, 1.5), 500)]
    [1.5, 1.5]
    """
    from ...model import HierarchicalFactorModel

    w = np.array(model.loadings, dtype=float)
    for b, ratio in zip(model.structure.blocks, block_margins(model, n_samples), strict=True):
        if ratio < margin:
            w[:, model.structure.columns(b)] *= math.sqrt(margin / ratio)
    return HierarchicalFactorModel(model.dims, model.structure, w, model.noise_var)


def block_margins(model: Any, n_samples: int) -> list[float]:
    """Smallest spike of each block over its restricted edge, in structure order.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.tasks.structure_benchmark import block_margins
    >>> m = hs.HierarchicalFactorModel.random((10, 12), "AB:1", rng=0)
    >>> len(block_margins(m, 500))
    1
    """
    from ...block_evidence import detection_edge

    s, dims = model.structure, model.dims
    off = np.concatenate([[0], np.cumsum(dims)])
    noise = float(np.max(model.noise_var))
    out = []
    for b in s.blocks:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(b)])
        wb = model.loadings[np.ix_(rows, np.arange(s.total_rank)[s.columns(b)])]
        spike = float(np.linalg.svd(wb, compute_uv=False)[-1] ** 2)
        k_out = sum(r for t, r in zip(s.blocks, s.ranks, strict=True) if set(t) - set(b))
        edge = detection_edge(noise, int(sum(dims[m] for m in b)), n_samples, k_out)
        out.append(spike / edge)
    return out


def _normalize(key: str, value: Any) -> Any:
    if key == "design":
        if value not in DESIGNS:
            raise ValueError(f"one of {', '.join(DESIGNS)}")
        return value
    if key == "edge_margin":
        if recovery.is_real(value) and value > 0:
            return float(value)
        raise ValueError("a positive number")
    if key == "noise_var" and not recovery.is_real(value):
        raise ValueError("a positive number (one sigma^2 for all views)")
    # rank, p_present and the recovery keys: as in the structure_recovery task
    return get_task("structure_recovery").normalize(key, value)


def _check(factors: Mapping[str, Any]) -> None:
    dims = factors["dims"]
    if factors["design"] == "noise":
        return
    if min(dims) <= factors["rank"]:
        raise ValueError(f"rank {factors['rank']} < min(dims) = {min(dims)}")


def true_model(factors: Mapping[str, Any], gen: np.random.Generator):
    """The true family and model of a non-null replicate, drawn from its model stream.

    What the task's data are drawn from (``generate`` calls it with the
    replicate's :data:`~hcl_stats.study.STREAM_MODEL` generator), so a caller with
    the same generator gets the benchmark's own truth without drawing data.

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.study.tasks.structure_benchmark import true_model
    >>> f = {"dims": [6, 7, 8], "rank": 2, "p_present": 0.6, "design": "above_edge",
    ...      "edge_margin": 1.5, "n_samples": 500, "noise_var": 1.0,
    ...      "singular_values": [0.5, 1.5], "latent_cov": 0.0}
    >>> family, model = true_model(f, np.random.default_rng(0))
    >>> model.structure == family
    True
    """
    family = fittable_family(tuple(factors["dims"]), factors["rank"], factors["p_present"], gen)
    model = recovery.random_model(factors, family, gen)
    if factors["design"] == "above_edge":
        model = lift_to_edge(model, factors["n_samples"], factors["edge_margin"])
    return family, model


def _generate(factors: Mapping[str, Any], rep_rng: Callable, sampler: str) -> Draw:
    dims = tuple(factors["dims"])
    n = factors["n_samples"]
    gen = rep_rng(STREAM_MODEL, per_cell=factors["model"] == "per_cell")
    data_rng = rep_rng(STREAM_DATA)
    if factors["design"] == "noise":
        truth = NoiseTruth(dims, factors["noise_var"])
        scale = math.sqrt(factors["noise_var"])
        if sampler == "wishart":
            from scipy.stats import wishart

            d = sum(dims)
            cov = wishart.rvs(df=n - 1, scale=np.eye(d) * factors["noise_var"] / (n - 1),
                              random_state=data_rng)
            return Draw(truth, dims, None, n, cov=np.atleast_2d(cov))
        from ...model import MultimodalData

        rows = scale * data_rng.standard_normal((n, sum(dims)))
        return Draw(truth, dims, None, n,
                    data=MultimodalData(np.split(rows, np.cumsum(dims)[:-1], axis=1)))
    family, model = true_model(factors, gen)
    if sampler == "wishart":
        from ...sampling import wishart_sample_cov

        return Draw(model, dims, family, n, cov=wishart_sample_cov(model, n, data_rng))
    return Draw(model, dims, family, n, data=model.sample(n, rng=data_rng))


def _analyse(estimator: Any, draw: Draw, spec: Any, rng: Any) -> Any:
    if isinstance(draw.truth, NoiseTruth) and not type(estimator).learns_structure:
        return NoBlocks(tuple(draw.dims), "given the true structure: no block")
    try:
        return default_analyse(estimator, draw, spec, rng)
    except NoStructureError as exc:
        return NoBlocks(tuple(draw.dims), str(exc))


def _learns(ctx: Any) -> bool:
    from ... import estimators

    return bool(estimators.get(ctx.spec.name).learns_structure)


def selection(fit: Any, truth: Any, ctx: Any) -> dict[str, float]:
    """``selection``: recovery of a learner's structure, or its null false positive.

    Under ``"noise"``: ``false_positive`` (1 if any block was selected),
    ``n_blocks`` and ``total_rank``. Otherwise ``exact`` (same blocks),
    ``rank_exact`` (same blocks and ranks), ``structure_precision``,
    ``structure_recall``, ``structure_f1``, ``block_f1`` (over (view, block)
    pairs) and ``rank_accuracy``; a learner that selected nothing scores 0 on
    each. ``{}`` for an estimator given the true structure.
    """
    from ... import metrics as core

    if not _learns(ctx):
        return {}
    chosen = None if isinstance(fit, NoBlocks) else fit.structure
    if isinstance(truth, NoiseTruth):
        return {
            "false_positive": float(chosen is not None),
            "n_blocks": float(len(chosen.blocks)) if chosen is not None else 0.0,
            "total_rank": float(chosen.total_rank) if chosen is not None else 0.0,
        }
    keys = ("structure_precision", "structure_recall", "structure_f1", "block_f1")
    if chosen is None:
        return {"exact": 0.0, "rank_exact": 0.0, "rank_accuracy": 0.0,
                **dict.fromkeys(keys, 0.0)}
    sup, rk = core.support_scores(chosen, truth), core.rank_recovery(chosen, truth)
    return {"exact": sup["exact"], "rank_exact": rk["exact"],
            "rank_accuracy": rk["rank_accuracy"], **{k: sup[k] for k in keys}}


def oracle_gram_rel(fit: Any, truth: Any, ctx: Any) -> dict[str, float]:
    """``oracle_gram_rel``: ``||W_hat W_hat^T - W W^T||_F / ||W W^T||_F`` (uses the truth).

    1.0 for a learner that selected no block (``W_hat = 0``); ``{}`` under the null.
    """
    from ... import metrics as core

    if isinstance(truth, NoiseTruth):
        return {}
    if isinstance(fit, NoBlocks):
        return {"overall": 1.0}
    return {"overall": float(core.overall_gram_error(fit, truth, relative=True))}


register_metric("selection", selection, notation="fraction of replicates")
register_metric("oracle_gram_rel", oracle_gram_rel,
                notation=r"$\|\hat W\hat W^\top - WW^\top\|_F / \|WW^\top\|_F$ (oracle)")

register_task(
    Task(
        name="structure_benchmark",
        defaults={
            **{k: v for k, v in recovery.RECOVERY_DEFAULTS.items() if k != "structure"},
            "design": "random",
            "rank": 2,
            "p_present": 0.6,
            "edge_margin": 1.5,
        },
        normalize=_normalize,
        generate=_generate,
        analyse=_analyse,
        check=_check,
    )
)
