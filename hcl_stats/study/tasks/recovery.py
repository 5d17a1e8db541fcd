"""The ``recovery`` task: a random hierarchical factor model, rows or a Wishart covariance.

Scenario keys (:data:`RECOVERY_DEFAULTS`): ``dims``, ``structure`` (required),
``n_samples`` (required), ``noise_var``, ``singular_values``, ``latent_cov`` and
``model`` (``"per_replicate"`` or ``"per_cell"``). The other tasks extend it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...exceptions import ValidationError
from ..registry import STREAM_DATA, STREAM_MODEL, Draw, Task, register_task

__all__ = [
    "RECOVERY_DEFAULTS",
    "TASK",
    "check",
    "generate",
    "is_int",
    "is_real",
    "normalize",
    "random_model",
]


def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (a bool is not).

    Examples
    --------
    >>> from hcl_stats.study.tasks.recovery import is_int
    >>> is_int(3), is_int(3.0), is_int(True)
    (True, False, False)
    """
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """Whether ``v`` is a finite real number (a bool is not).

    Examples
    --------
    >>> from hcl_stats.study.tasks.recovery import is_real
    >>> is_real(0.5), is_real(2), is_real(float("inf")), is_real(False)
    (True, True, False, False)
    """
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def normalize(key: str, value: Any) -> Any:
    """Canonical value of a recovery scenario key; ``ValueError(rule)`` if invalid.

    Examples
    --------
    >>> from hcl_stats.study.tasks.recovery import normalize
    >>> normalize("dims", [3, 4]), normalize("noise_var", 1)
    ([3, 4], 1.0)
    >>> try:
    ...     normalize("dims", [0, 4])
    ... except ValueError as exc:
    ...     print(exc)
    a non-empty list of positive integers
    """
    if key == "dims":
        if not isinstance(value, list) or not value or not all(
            is_int(v) and v >= 1 for v in value
        ):
            raise ValueError("a non-empty list of positive integers")
        return [int(v) for v in value]
    if key == "structure":
        if not isinstance(value, str):
            raise ValueError("a structure string such as 'ABC:3 AB:2 C:1' or 'all:3'")
        return value.strip()
    if key == "n_samples":
        if not is_int(value) or value < 2:
            raise ValueError("an integer >= 2")
        return int(value)
    if key == "noise_var":
        if is_real(value) and value > 0:
            return float(value)
        if isinstance(value, list) and value and all(is_real(v) and v > 0 for v in value):
            return [float(v) for v in value]
        raise ValueError("a positive number or a list of positive numbers (one per view)")
    if key == "singular_values":
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(is_real(v) for v in value)
            and 0 <= value[0] <= value[1]
        ):
            return [float(value[0]), float(value[1])]
        raise ValueError("a pair [low, high] with 0 <= low <= high")
    if key == "latent_cov":
        if is_real(value) and -1 < value < 1:
            return float(value)
        raise ValueError("a latent correlation rho with -1 < rho < 1")
    if key == "model":
        if value not in ("per_replicate", "per_cell"):
            raise ValueError("'per_replicate' or 'per_cell'")
        return value
    raise ValueError("a known scenario key")  # pragma: no cover - keys checked first


def check(factors: Mapping[str, Any]) -> None:
    """Cross-key consistency of a recovery cell; ``ValueError(rule)`` if violated.

    Examples
    --------
    >>> from hcl_stats.study.tasks.recovery import check
    >>> cell = {"dims": [3, 4], "structure": "AB:1 A:1", "noise_var": 1.0,
    ...         "latent_cov": 0.0, "n_samples": 100}
    >>> check(cell)  # consistent: returns None
    >>> try:
    ...     check({**cell, "dims": [1, 1], "structure": "AB:2"})
    ... except ValueError as exc:
    ...     print(exc)
    consistent with dims: rank 2 of a block containing view 1 exceeds d_1 = 1
    """
    from ...structure import Structure

    dims = factors["dims"]
    try:
        s = Structure.coerce(factors["structure"], len(dims))
    except ValidationError as exc:
        raise ValueError(f"a valid structure for {len(dims)} views ({exc})") from None
    for b, r in zip(s.blocks, s.ranks, strict=True):
        for m in b:
            if dims[m] < r:
                raise ValueError(
                    f"consistent with dims: rank {r} of a block containing view "
                    f"{m + 1} exceeds d_{m + 1} = {dims[m]}"
                )
    nv = factors["noise_var"]
    if isinstance(nv, list) and len(nv) != len(dims):
        raise ValueError(f"one noise variance per view ({len(dims)} views)")
    k, d = s.total_rank, sum(dims)
    rho = factors["latent_cov"]
    if rho < -1.0 / max(k - 1, 1):
        raise ValueError(f"a PSD equicorrelation: rho >= -1/(K-1) = {-1 / max(k - 1, 1):.3g}")
    if d <= k:
        raise ValueError(f"d = {d} > K = {k} (the noise variance needs d > K)")


def random_model(factors: Mapping[str, Any], structure: Any, rng: Any):
    """Draw the true model of a replicate from the recovery factors.

    Uses ``dims``, ``noise_var`` (scalar or per-view list), ``singular_values``
    and ``latent_cov`` (0.0 means uncorrelated latents) of ``factors``; shared by
    every task whose data come from :meth:`HierarchicalFactorModel.random`.

    Examples
    --------
    The same seed gives the same model:

    >>> import numpy as np
    >>> from hcl_stats.study.tasks.recovery import random_model
    >>> factors = {"dims": [3, 4], "noise_var": 0.5, "singular_values": [0.5, 1.5],
    ...            "latent_cov": 0.0}
    >>> m = random_model(factors, "AB:1 A:1", rng=0)
    >>> m.dims, m.noise_var, m.loadings.shape
    ((3, 4), 0.5, (7, 2))
    >>> bool(np.array_equal(m.loadings, random_model(factors, "AB:1 A:1", 0).loadings))
    True
    """
    from ...model import HierarchicalFactorModel

    nv = factors["noise_var"]
    rho = factors["latent_cov"]
    return HierarchicalFactorModel.random(
        tuple(factors["dims"]),
        structure,
        noise_var=np.asarray(nv) if isinstance(nv, list) else nv,
        singular_values=tuple(factors["singular_values"]),
        latent_cov=None if rho == 0.0 else rho,
        rng=rng,
    )


#: Scenario defaults of the recovery task; other tasks extend them.
RECOVERY_DEFAULTS: dict[str, Any] = {
    "dims": None,
    "structure": None,
    "n_samples": None,
    "noise_var": 1.0,
    "singular_values": [0.5, 1.5],
    "latent_cov": 0.0,
    "model": "per_replicate",
}


def generate(factors: Mapping[str, Any], rep_rng: Callable, sampler: str) -> Draw:
    """Draw the true model (stream 0) and the rows or sample covariance (stream 1)."""
    from ...structure import Structure

    dims = tuple(factors["dims"])
    structure = Structure.coerce(factors["structure"], len(dims))
    model = random_model(
        factors, structure, rep_rng(STREAM_MODEL, per_cell=factors["model"] == "per_cell")
    )
    n = factors["n_samples"]
    data_rng = rep_rng(STREAM_DATA)
    if sampler == "wishart":
        from ...sampling import wishart_sample_cov

        cov = wishart_sample_cov(model, n, data_rng)
        return Draw(model, dims, model.structure, n, cov=cov)
    return Draw(model, dims, model.structure, n, data=model.sample(n, rng=data_rng))


TASK = register_task(
    Task(
        name="recovery",
        defaults=dict(RECOVERY_DEFAULTS),
        normalize=normalize,
        generate=generate,
        check=check,
    )
)
