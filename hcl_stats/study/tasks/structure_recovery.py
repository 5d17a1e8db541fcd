"""Study task ``structure_recovery``: random true structure families per replicate.

Imported by :mod:`hcl_stats.study.tasks`. Identical to the
``recovery`` task except that ``scenario.structure = "random"`` draws, for every
replicate, a fresh family of blocks: each non-empty subset of the ``M`` views is
present independently with probability ``p_present`` (redrawn until at least one
block is present), all with rank ``rank``. The family is drawn from the
replicate's model stream before the loadings, so all estimators of a (cell, rep)
see the same truth. A fixed structure string behaves exactly like ``recovery``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..registry import STREAM_DATA, STREAM_MODEL, Draw, Task, register_task
from . import recovery

__all__: list[str] = []


def random_family(n_views: int, rank: int, p_present: float, rng: np.random.Generator):
    """A random structure: each subset present with probability ``p_present``.

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.study.tasks.structure_recovery import random_family
    >>> s = random_family(3, 1, 0.5, np.random.default_rng(0))
    >>> s.n_views, set(s.ranks)
    (3, {1})
    """
    from ...estimators._convex_core import candidate_blocks
    from ...structure import Structure

    cands = candidate_blocks(n_views)
    while True:
        keep = [b for b, u in zip(cands, rng.random(len(cands)), strict=True) if u < p_present]
        if keep:
            return Structure(n_views, tuple(keep), (rank,) * len(keep))


def _normalize(key: str, value: Any) -> Any:
    if key == "structure" and value == "random":
        return "random"
    if key == "rank":
        if not recovery.is_int(value) or value < 1:
            raise ValueError("a positive integer")
        return int(value)
    if key == "p_present":
        if recovery.is_real(value) and 0 < value <= 1:
            return float(value)
        raise ValueError("a probability in (0, 1]")
    return recovery.normalize(key, value)


def _check(factors: Mapping[str, Any]) -> None:
    if factors["structure"] != "random":
        recovery.check(factors)
        return
    dims = factors["dims"]
    if min(dims) < factors["rank"]:
        raise ValueError(f"rank {factors['rank']} <= min(dims) = {min(dims)}")
    k = factors["rank"] * (2 ** len(dims) - 1)
    if sum(dims) <= k:
        raise ValueError(f"d = {sum(dims)} > the largest possible K = {k}")


def _generate(factors: Mapping[str, Any], rep_rng: Callable, sampler: str) -> Draw:
    from ...structure import Structure

    dims = tuple(factors["dims"])
    gen = rep_rng(STREAM_MODEL, per_cell=factors["model"] == "per_cell")
    if factors["structure"] == "random":
        structure = random_family(len(dims), factors["rank"], factors["p_present"], gen)
    else:
        structure = Structure.coerce(factors["structure"], len(dims))
    model = recovery.random_model(factors, structure, gen)
    n = factors["n_samples"]
    data_rng = rep_rng(STREAM_DATA)
    if sampler == "wishart":
        from ...sampling import wishart_sample_cov

        return Draw(model, dims, structure, n, cov=wishart_sample_cov(model, n, data_rng))
    return Draw(model, dims, structure, n, data=model.sample(n, rng=data_rng))


register_task(
    Task(
        name="structure_recovery",
        defaults={
            "dims": None,
            "structure": "random",
            "n_samples": None,
            "noise_var": 1.0,
            "singular_values": [0.5, 1.5],
            "latent_cov": 0.0,
            "model": "per_replicate",
            "rank": 2,
            "p_present": 0.6,
        },
        normalize=_normalize,
        generate=_generate,
        check=_check,
    )
)
