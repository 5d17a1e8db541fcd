"""Registries of the study harness: tasks, metrics, estimator specs and seed streams.

* :func:`register_metric` ``(name, fn, *, notation, unit)``: ``fn(fit, truth,
  context) -> dict[label, float]``, called once per (cell, rep, estimator); a
  metric that does not apply returns ``{}``. Labels: ``"overall"``, ``"A|ABC"``
  for the block of view A in structure ABC, ``"ABC"`` for a structure, ``"mean"``
  for a mean over blocks, or a key such as ``"structure_precision"``. Display
  names come from :mod:`hcl_stats._metric_info` when it lists the metric.
* :func:`register_task` ``(Task(...))``: a *kind* of study. A task lists its
  scenario keys with defaults and normalisers, draws a :class:`Draw` from the
  unit streams (``generate``) and, optionally, replaces the default analysis
  (:func:`default_analyse`).

The built-in metrics (:mod:`hcl_stats.study.metrics`) and tasks
(:mod:`hcl_stats.study.tasks`) are registered when :mod:`hcl_stats.study` is
imported, which every worker process does. Registrations made elsewhere (e.g. in
a test) are seen by the serial backend only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import estimators
from .._metric_info import METRICS
from ..exceptions import ValidationError

__all__ = [
    "SAMPLERS",
    "STREAM_DATA",
    "STREAM_METHOD",
    "STREAM_MODEL",
    "Draw",
    "EstimatorSpec",
    "MetricContext",
    "MetricSpec",
    "Task",
    "available_metrics",
    "available_tasks",
    "canonical_json",
    "default_analyse",
    "get_metric",
    "get_task",
    "register_metric",
    "register_task",
    "unit_rng",
]

#: Stream indices of the SeedSequence spawn key ``(*cell.key, rep, stream)``.
STREAM_MODEL, STREAM_DATA, STREAM_METHOD = 0, 1, 2

SAMPLERS = ("data", "wishart")


@dataclass(frozen=True)
class MetricContext:
    """What a metric function may look at besides the fit and the truth.

    Parameters
    ----------
    label : str
        The estimator label in the study (e.g. ``"schur_per_view"``).
    spec : EstimatorSpec
        Registry name and hyper-parameters of the estimator.
    draw : Draw
        The generated data of this (cell, rep).
    factors : mapping
        The cell's data-generating factors.
    wall_time : float
        Seconds spent in the analysis (the estimator's fit) of this unit.
    """

    label: str
    spec: EstimatorSpec
    draw: Draw
    factors: Mapping[str, Any]
    wall_time: float


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: function, plot notation and unit."""

    name: str
    fn: Callable[[Any, Any, MetricContext], dict[str, float]]
    notation: str = ""
    unit: str = ""


_METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    fn: Callable[[Any, Any, MetricContext], dict[str, float]],
    *,
    notation: str = "",
    unit: str = "",
) -> MetricSpec:
    """Register ``fn(fit, truth, context) -> dict[label, float]`` as metric ``name``.

    Parameters
    ----------
    name : str
        The name used in ``study.metrics``.
    fn : callable
        Returns one float per label; ``{}`` if the metric does not apply.
    notation : str
        Mathematical notation (matplotlib mathtext) used on figure axes; for a
        metric listed in :mod:`hcl_stats._metric_info` the registry's entry is used.
    unit : str
        Unit shown on figure axes, e.g. ``"s"``; empty for dimensionless values.

    Returns
    -------
    MetricSpec

    Examples
    --------
    A metric is a function of the fit, the truth and a :class:`MetricContext`
    (this one ignores the context):

    >>> import hcl_stats as hs, hcl_stats.study
    >>> from hcl_stats.study.registry import available_metrics, register_metric
    >>> def worst_sin(fit, truth, context):
    ...     return {"overall": max(hs.metrics.sin_theta(fit, truth).values())}
    >>> spec = register_metric("example_worst_sin_theta", worst_sin)
    >>> "example_worst_sin_theta" in available_metrics()
    True
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> {k: round(v, 6) for k, v in spec.fn(m, m, None).items()}
    {'overall': 0.0}
    """
    if name in METRICS:  # the one registry of display names wins
        notation, unit = METRICS[name].notation or notation, METRICS[name].unit or unit
    spec = MetricSpec(name, fn, notation, unit)
    _METRICS[name] = spec
    return spec


def available_metrics() -> tuple[str, ...]:
    """Names of the registered metrics, sorted.

    Examples
    --------
    >>> import hcl_stats.study  # registers the built-in metrics
    >>> from hcl_stats.study.registry import available_metrics
    >>> {"sin_theta", "procrustes", "overall_gram"} <= set(available_metrics())
    True
    """
    return tuple(sorted(_METRICS))


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name`` (ValidationError listing the names otherwise).

    Examples
    --------
    >>> import hcl_stats as hs, hcl_stats.study
    >>> from hcl_stats.study.registry import get_metric
    >>> get_metric("sin_theta").name, get_metric("wall_time").unit
    ('sin_theta', 's')
    >>> try:
    ...     get_metric("no_such_metric")
    ... except hs.exceptions.ValidationError:
    ...     print("unknown metric")
    unknown metric
    """
    try:
        return _METRICS[name]
    except KeyError:
        raise ValidationError(
            f"metric must be one of {', '.join(available_metrics())}; got {name!r}."
        ) from None


@dataclass(frozen=True)
class Draw:
    """Generated data of one (cell, replicate).

    Parameters
    ----------
    truth : object
        The true model (for ``recovery``: a HierarchicalFactorModel).
    dims : tuple of int
    structure : Structure
        The true structure (given to estimators that do not learn it).
    n_samples : int
    data : MultimodalData or None
        Rows, when the sampler is ``"data"``.
    cov : ndarray of shape (d, d) or None
        Unbiased sample covariance, when the sampler is ``"wishart"``.
    extra : mapping
        Task-specific values (e.g. labelled data of a downstream task).
    """

    truth: Any
    dims: tuple[int, ...]
    structure: Any
    n_samples: int
    data: Any = None
    cov: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def default_analyse(estimator: Any, draw: Draw, spec: EstimatorSpec, rng: Any) -> Any:
    """Fit ``estimator`` on a draw: the rows if there are any, else the covariance.

    The true structure is given unless the estimator ``learns_structure``.

    Examples
    --------
    On a population draw (the covariance itself) the structure-blind fit reproduces
    ``W W^T``:

    >>> import hcl_stats as hs
    >>> from hcl_stats.study.registry import Draw, EstimatorSpec, default_analyse
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> draw = Draw(m, m.dims, m.structure, n_samples=10**6, cov=m.covariance())
    >>> spec = EstimatorSpec("naive", "naive", {})
    >>> fit = default_analyse(spec.build(), draw, spec, rng=0)
    >>> round(hs.metrics.overall_gram_error(fit, m), 6)
    0.0
    """
    structure = None if type(estimator).learns_structure else draw.structure
    if draw.data is not None:
        return estimator.fit(draw.data, structure=structure, rng=rng)
    return estimator.fit_covariance(
        draw.cov, dims=draw.dims, n_samples=draw.n_samples, structure=structure, rng=rng
    )


@dataclass(frozen=True)
class Task:
    """A kind of study: scenario schema, data generation and analysis.

    Parameters
    ----------
    name : str
        The ``study.kind`` value.
    defaults : mapping
        Allowed scenario keys and their defaults (``None``: required).
    normalize : callable
        ``normalize(key, value) -> canonical JSON-able value``; raises
        ``ValueError("<rule>")`` (the rule only) on a bad value.
    generate : callable
        ``generate(factors, rep_rng, sampler) -> Draw`` where
        ``rep_rng(stream, *, per_cell=False)`` returns the unit's Generator for a
        stream (``per_cell=True``: the stream of replicate 0).
    samplers : tuple of str
        The samplers the task supports.
    analyse : callable
        ``analyse(estimator, draw, spec, rng) -> fit``.
    check : callable, optional
        ``check(factors) -> None``; raises ``ValueError("<rule>")`` if a full cell
        is inconsistent (e.g. a rank larger than a view's dimension).
    """

    name: str
    defaults: Mapping[str, Any]
    normalize: Callable[[str, Any], Any]
    generate: Callable[..., Draw]
    samplers: tuple[str, ...] = SAMPLERS
    analyse: Callable[..., Any] = default_analyse
    check: Callable[[Mapping[str, Any]], None] | None = None


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register a :class:`Task` under ``task.name``; returns it.

    Examples
    --------
    Registering is idempotent for the same task object:

    >>> import hcl_stats.study
    >>> from hcl_stats.study.registry import get_task, register_task
    >>> task = get_task("recovery")
    >>> register_task(task) is task, get_task("recovery") is task
    (True, True)
    """
    _TASKS[task.name] = task
    return task


def available_tasks() -> tuple[str, ...]:
    """Names of the registered tasks, sorted.

    Examples
    --------
    >>> import hcl_stats.study  # registers the built-in tasks
    >>> from hcl_stats.study.registry import available_tasks
    >>> "recovery" in available_tasks()
    True
    """
    return tuple(sorted(_TASKS))


def get_task(name: str) -> Task:
    """The registered task ``name`` (ValidationError listing the names otherwise).

    Examples
    --------
    >>> import hcl_stats as hs, hcl_stats.study
    >>> from hcl_stats.study.registry import get_task
    >>> get_task("recovery").name
    'recovery'
    >>> try:
    ...     get_task("no_such_task")
    ... except hs.exceptions.ValidationError as exc:
    ...     print(str(exc).startswith("kind must be one of"))
    True
    """
    try:
        return _TASKS[name]
    except KeyError:
        raise ValidationError(
            f"kind must be one of {', '.join(available_tasks())}; got {name!r}."
        ) from None


def canonical_json(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces, no NaN): the input of every digest.

    Examples
    --------
    >>> from hcl_stats.study.registry import canonical_json
    >>> canonical_json({"b": [1, 2.5], "a": None})
    '{"a":null,"b":[1,2.5]}'
    >>> try:
    ...     canonical_json({"a": float("nan")})
    ... except ValueError:
    ...     print("NaN refused")
    NaN refused
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class EstimatorSpec:
    """A labelled estimator of a study: registry name and hyper-parameters."""

    label: str
    name: str
    params: Mapping[str, Any]

    def build(self) -> Any:
        """A fresh estimator instance."""
        return estimators.get(self.name)(**dict(self.params))

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of ``(name, params)``.

        The noise option is hashed under its pre-rename key ``noise_var``, so
        stores and manifests written before ``noise_rule`` keep their digests.
        """
        params = {("noise_var" if k == "noise_rule" else k): v for k, v in self.params.items()}
        return hashlib.sha256(
            canonical_json({"name": self.name, "params": params}).encode()
        ).hexdigest()


def unit_rng(seed: int, cell_key: tuple[int, ...], rep: int, stream: int) -> np.random.Generator:
    """Generator of one stream of one (cell, replicate).

    ``default_rng(SeedSequence(seed, spawn_key=(*cell_key, rep, stream)))``.

    Examples
    --------
    >>> from hcl_stats.study import unit_rng
    >>> a = unit_rng(1, (7, 8), 0, 1).standard_normal()
    >>> a == unit_rng(1, (7, 8), 0, 1).standard_normal()
    True
    """
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(*cell_key, int(rep), int(stream)))
    )
