"""Monte Carlo study configs: loading, validation, grid expansion, seeding, registries.

A study is one TOML file in ``simulations/`` (see ``simulations/README.md``)::

    [study]
    question = "How fast does the block error fall with n?"
    kind = "recovery"            # task registry name (default)
    replications = 10
    seed = 20260425              # entropy of every SeedSequence
    sampler = "data"             # "data" (draw rows) or "wishart" (draw the covariance)
    metrics = ["block_gram", "overall_gram", "wall_time"]

    [scenario]                   # fixed data-generating factors (task defaults fill in)
    dims = [20, 30, 40]
    structure = "all:2"

    [grid]                       # cartesian product over these factors ...
    n_samples = [250, 1000]
    [[grid.zip]]                 # ... times each zipped group (lists of equal length)
    noise_var = [0.5, 1.0]
    singular_values = [[0.5, 1.5], [1.0, 2.0]]

    [estimators.schur]           # label; ``name`` defaults to the label
    [estimators.schur_per_view]
    name = "schur"               # registry name, ``hcl_stats.estimators.get(name)``
    variant = "per_view"         # every other key is a hyper-parameter

Every error raised while loading is a :class:`~hcl_stats.exceptions.StudyConfigError`
whose message names the file, the key path, the value and the rule, e.g.
``quick.toml: grid.n_samples[1] must be an integer >= 2; got -5.``

Design (Generate -> Analyse -> Summarise per cell, as in SimDesign)
-------------------------------------------------------------------
* **Cells.** The grid expands to cells in a fixed order (cartesian product of the
  plain factors in file order, then of the zipped groups). A cell's *factors* are
  the complete, normalised data-generating scenario (task defaults, ``[scenario]``
  and the grid values), plus ``kind`` and ``sampler``. Its key is the first four
  32-bit words of the sha256 of their canonical JSON (:func:`factor_digest`), and
  its id is the first 12 hex digits of that digest. Estimators and metrics are
  *not* part of the key, so adding an estimator keeps the data of every cell.
* **Seeding.** The generator of stream ``s`` for replicate ``rep`` of a cell is
  ``default_rng(SeedSequence(seed, spawn_key=(*cell.key, rep, s)))``
  (:func:`unit_rng`); streams are :data:`STREAM_MODEL` (the true model),
  :data:`STREAM_DATA` (the data or sample covariance) and :data:`STREAM_METHOD`
  (given as ``rng`` to every estimator). Every estimator of a (cell, rep) sees
  the same truth and data (common random numbers), and results do not depend on
  the order of execution or on the backend.
* **Truth per replicate.** The ``recovery`` task draws a fresh
  :meth:`~hcl_stats.HierarchicalFactorModel.random` model for every replicate
  (the paper's code does the same; the Monte Carlo average is then over models
  and data). Set ``scenario.model = "per_cell"`` to draw one model per cell
  (from replicate 0's model stream) and vary only the data across replicates.

Registries (tiny on purpose)
----------------------------
* :func:`register_metric` ``(name, fn, *, notation, unit)``: ``fn(fit, truth,
  context) -> dict[label, float]``, called once per (cell, rep, estimator); a
  metric that does not apply returns ``{}``. Labels: ``"overall"``, ``"A|ABC"``
  for the block of view A in structure ABC, ``"ABC"`` for a structure, ``"mean"``
  for a mean over blocks, or a key such as ``"structure_precision"``.
* :func:`register_task` ``(Task(...))``: a *kind* of study. A task lists its
  scenario keys with defaults and normalisers, draws a :class:`Draw` from the
  unit streams (``generate``) and, optionally, replaces the default analysis
  (``analyse(estimator, draw, spec, rng) -> fit``, by default ``fit`` /
  ``fit_covariance`` with the true structure unless the estimator
  ``learns_structure``). A "downstream" task (labelled data, ``beta``,
  excess-risk metrics) registers its own task and metrics and needs no change to
  :mod:`hcl_stats.runner`. Registrations must happen at import time of a module
  that worker processes import too: list a package module in
  :data:`PLUGIN_MODULES` (imported at the end of this module), as
  ``hcl_stats._missing_study`` does for the ``missing_views`` kind. Registrations
  made elsewhere (e.g. in a test) are seen by the serial backend only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import StudyConfigError, ValidationError

__all__ = [
    "STREAM_DATA",
    "STREAM_METHOD",
    "STREAM_MODEL",
    "Cell",
    "Draw",
    "EstimatorSpec",
    "MetricContext",
    "MetricSpec",
    "Study",
    "Task",
    "available_metrics",
    "available_tasks",
    "factor_digest",
    "get_metric",
    "get_task",
    "load_study",
    "register_metric",
    "register_task",
    "unit_rng",
]

#: Stream indices of the SeedSequence spawn key ``(*cell.key, rep, stream)``.
STREAM_MODEL, STREAM_DATA, STREAM_METHOD = 0, 1, 2

SAMPLERS = ("data", "wishart")

#: Limits of a study file, so that a small hostile or careless file cannot make
#: ``validate`` or ``run`` hang or exhaust memory: the file size in bytes, the number
#: of cells of the grid and the number of replications.
MAX_CONFIG_BYTES = 1_000_000
MAX_CELLS = 10_000
MAX_REPLICATIONS = 100_000

#: Rule for every name that becomes a file name (``[report]`` figure and table
#: names): letters, digits, ``_``, ``.`` and ``-``, not starting with a dot, so that
#: no name can leave the output directory (no separators, no ``..``).
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def is_safe_name(name: Any) -> bool:
    """Whether ``name`` may be used as a file name inside an output directory.

    Examples
    --------
    >>> from hcl_stats.study import is_safe_name
    >>> is_safe_name("errors_by_n"), is_safe_name("../../x"), is_safe_name(".hidden")
    (True, False, False)
    """
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


# --------------------------------------------------------------------- registries
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
    """
    from ._metric_info import METRICS  # the one registry of display names wins

    if name in METRICS:
        notation, unit = METRICS[name].notation or notation, METRICS[name].unit or unit
    spec = MetricSpec(name, fn, notation, unit)
    _METRICS[name] = spec
    return spec


def available_metrics() -> tuple[str, ...]:
    """Names of the registered metrics, sorted."""
    return tuple(sorted(_METRICS))


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name`` (ValidationError listing the names otherwise)."""
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


def _default_analyse(estimator: Any, draw: Draw, spec: EstimatorSpec, rng: Any) -> Any:
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
    analyse: Callable[..., Any] = _default_analyse
    check: Callable[[Mapping[str, Any]], None] | None = None


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register a :class:`Task` under ``task.name``; returns it."""
    _TASKS[task.name] = task
    return task


def available_tasks() -> tuple[str, ...]:
    """Names of the registered tasks, sorted."""
    return tuple(sorted(_TASKS))


def get_task(name: str) -> Task:
    """The registered task ``name`` (ValidationError listing the names otherwise)."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValidationError(
            f"kind must be one of {', '.join(available_tasks())}; got {name!r}."
        ) from None


# ------------------------------------------------------------------ recovery task
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _recovery_normalize(key: str, value: Any) -> Any:
    if key == "dims":
        if not isinstance(value, list) or not value or not all(
            _is_int(v) and v >= 1 for v in value
        ):
            raise ValueError("a non-empty list of positive integers")
        return [int(v) for v in value]
    if key == "structure":
        if not isinstance(value, str):
            raise ValueError("a structure string such as 'ABC:3 AB:2 C:1' or 'all:3'")
        return value.strip()
    if key == "n_samples":
        if not _is_int(value) or value < 2:
            raise ValueError("an integer >= 2")
        return int(value)
    if key == "noise_var":
        if _is_real(value) and value > 0:
            return float(value)
        if isinstance(value, list) and value and all(_is_real(v) and v > 0 for v in value):
            return [float(v) for v in value]
        raise ValueError("a positive number or a list of positive numbers (one per view)")
    if key == "singular_values":
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(_is_real(v) for v in value)
            and 0 <= value[0] <= value[1]
        ):
            return [float(value[0]), float(value[1])]
        raise ValueError("a pair [low, high] with 0 <= low <= high")
    if key == "latent_cov":
        if _is_real(value) and -1 < value < 1:
            return float(value)
        raise ValueError("a latent correlation rho with -1 < rho < 1")
    if key == "model":
        if value not in ("per_replicate", "per_cell"):
            raise ValueError("'per_replicate' or 'per_cell'")
        return value
    raise ValueError("a known scenario key")  # pragma: no cover - keys checked first


def _recovery_check(factors: Mapping[str, Any]) -> None:
    from .structure import Structure

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
    """
    from .model import HierarchicalFactorModel

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


def _recovery_generate(factors: Mapping[str, Any], rep_rng: Callable, sampler: str) -> Draw:
    from .structure import Structure

    dims = tuple(factors["dims"])
    structure = Structure.coerce(factors["structure"], len(dims))
    model = random_model(
        factors, structure, rep_rng(STREAM_MODEL, per_cell=factors["model"] == "per_cell")
    )
    n = factors["n_samples"]
    data_rng = rep_rng(STREAM_DATA)
    if sampler == "wishart":
        from .sampling import wishart_sample_cov

        cov = wishart_sample_cov(model, n, data_rng)
        return Draw(model, dims, model.structure, n, cov=cov)
    return Draw(model, dims, model.structure, n, data=model.sample(n, rng=data_rng))


register_task(
    Task(
        name="recovery",
        defaults=dict(RECOVERY_DEFAULTS),
        normalize=_recovery_normalize,
        generate=_recovery_generate,
        check=_recovery_check,
    )
)


# ------------------------------------------------------------------ metrics
def _view_block_label(m: int, b: frozenset[int], structure: Any) -> str:
    from .structure import format_block

    return f"{format_block([m])}|{format_block(b)}"


def _block_gram(relative: bool) -> Callable:
    def fn(fit, truth, ctx):
        from .metrics import block_gram_errors

        errs = block_gram_errors(fit, truth, relative=relative)
        out = {_view_block_label(m, b, truth.structure): v for (m, b), v in errs.items()}
        out["mean"] = float(np.mean(list(errs.values())))
        return out

    return fn


def _structure_gram(relative: bool) -> Callable:
    def fn(fit, truth, ctx):
        from .metrics import structure_gram_errors
        from .structure import format_block

        errs = structure_gram_errors(fit, truth, relative=relative)
        return {format_block(b): v for b, v in errs.items()}

    return fn


def _overall(relative: bool) -> Callable:
    def fn(fit, truth, ctx):
        from .metrics import overall_gram_error

        return {"overall": overall_gram_error(fit, truth, relative=relative)}

    return fn


def _procrustes(fit, truth, ctx):
    from .metrics import procrustes_errors
    from .structure import format_block

    return {format_block(b): v for b, v in procrustes_errors(fit, truth).items()}


def _sin_theta(fit, truth, ctx):
    from .metrics import sin_theta
    from .structure import format_block

    return {format_block(b): v for b, v in sin_theta(fit, truth).items()}


def _support(fit, truth, ctx):
    from .estimators import get

    if not get(ctx.spec.name).learns_structure:
        return {}  # the true structure was given: nothing was recovered
    from .metrics import support_scores

    return support_scores(fit, truth)


def _rank(fit, truth, ctx):
    from .estimators import get

    if not get(ctx.spec.name).learns_structure:
        return {}
    from .metrics import rank_recovery

    return rank_recovery(fit, truth)


def _wall_time(fit, truth, ctx):
    return {"fit": float(ctx.wall_time)}


def _converged(fit, truth, ctx):
    c = fit.diagnostics.converged
    return {} if c is None else {"fit": float(bool(c))}


def _relative_gradient(fit, truth, ctx):
    g = fit.diagnostics.relative_gradient
    return {} if g is None else {"fit": float(g)}


def _noise_error(fit, truth, ctx):
    est = np.broadcast_to(np.asarray(fit.noise_var, float), (len(fit.dims),))
    tru = np.broadcast_to(np.asarray(truth.noise_var, float), (len(fit.dims),))
    return {"max": float(np.max(np.abs(est - tru)))}


_GRAM_BLOCK = r"\|\hat W_m^S \hat W_m^{S\top} - W_m^S W_m^{S\top}\|_F"
register_metric("block_gram", _block_gram(False), notation=f"${_GRAM_BLOCK}$")
register_metric(
    "block_gram_rel", _block_gram(True), notation=rf"${_GRAM_BLOCK} / \|W_m^S W_m^{{S\top}}\|_F$"
)
register_metric(
    "structure_gram",
    _structure_gram(False),
    notation=r"$\|\hat W^S \hat W^{S\top} - W^S W^{S\top}\|_F$",
)
register_metric(
    "structure_gram_rel",
    _structure_gram(True),
    notation=r"$\|\hat W^S \hat W^{S\top} - W^S W^{S\top}\|_F / \|W^S W^{S\top}\|_F$",
)
register_metric("overall_gram", _overall(False), notation=r"$\|\hat W \hat W^\top - W W^\top\|_F$")
register_metric(
    "overall_gram_rel",
    _overall(True),
    notation=r"$\|\hat W \hat W^\top - W W^\top\|_F / \|W W^\top\|_F$",
)
register_metric(
    "procrustes", _procrustes, notation=r"$\min_{Q_S} \|\hat W^S Q_S - W^S\|_F$"
)
register_metric("sin_theta", _sin_theta, notation=r"$\|\sin\Theta(\hat W^S, W^S)\|_2$")
register_metric("support", _support, notation="structure recovery score (0 to 1)")
register_metric("rank", _rank, notation=r"rank recovery ($\hat r_S$ vs $r_S$)")
register_metric("wall_time", _wall_time, notation="fit wall time", unit="s")
register_metric("converged", _converged, notation="fraction converged")
register_metric("relative_gradient", _relative_gradient, notation="relative gradient")
register_metric("noise_var", _noise_error, notation=r"$\max_m |\hat\sigma_m^2 - \sigma_m^2|$")


# ------------------------------------------------------------------ config objects
def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def factor_digest(factors: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of a cell's data-generating factors."""
    return hashlib.sha256(_canonical(dict(factors)).encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One design cell.

    Parameters
    ----------
    index : int
        Position in the expanded grid.
    factors : dict
        All data-generating factors (normalised scenario, ``kind``, ``sampler``).
    varying : dict
        The grid factors and their values in this cell.
    """

    index: int
    factors: Mapping[str, Any]
    varying: Mapping[str, Any]

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of ``factors``."""
        return factor_digest(self.factors)

    @property
    def id(self) -> str:
        """Short stable identifier (12 hex digits of :attr:`digest`)."""
        return self.digest[:12]

    @property
    def key(self) -> tuple[int, ...]:
        """Four 32-bit words of :attr:`digest`: the cell part of every spawn key."""
        d = self.digest
        return tuple(int(d[i : i + 8], 16) for i in range(0, 32, 8))


@dataclass(frozen=True)
class EstimatorSpec:
    """A labelled estimator of a study: registry name and hyper-parameters."""

    label: str
    name: str
    params: Mapping[str, Any]

    def build(self) -> Any:
        """A fresh estimator instance."""
        from . import estimators

        return estimators.get(self.name)(**dict(self.params))

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of ``(name, params)``."""
        return hashlib.sha256(
            _canonical({"name": self.name, "params": dict(self.params)}).encode()
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


@dataclass(frozen=True)
class Study:
    """A validated study config (see the module docstring for the file format).

    Attributes
    ----------
    path : Path
    name : str
    question : str
    kind : str
    replications : int
    seed : int
    sampler : str
    metrics : tuple of str
    scenario : dict
        Normalised fixed factors (task defaults filled in).
    grid : tuple of str
        Names of the grid factors, in file order.
    cells : tuple of Cell
    estimators : dict[str, EstimatorSpec]
        In file order.
    report : dict
        The raw ``[report]`` table (used by :mod:`hcl_stats.plotting` and
        :mod:`hcl_stats.tables`).
    digest : str
        sha256 of the canonical JSON of the whole parsed config.
    """

    path: Path
    name: str
    question: str
    kind: str
    replications: int
    seed: int
    sampler: str
    metrics: tuple[str, ...]
    scenario: Mapping[str, Any]
    grid: tuple[str, ...]
    cells: tuple[Cell, ...]
    estimators: Mapping[str, EstimatorSpec]
    report: Mapping[str, Any]
    digest: str

    @property
    def task(self) -> Task:
        """The registered task of ``kind``."""
        return get_task(self.kind)

    def cell(self, cell_id: str) -> Cell:
        """The cell whose id starts with ``cell_id`` (ValidationError if not unique)."""
        hits = [c for c in self.cells if c.id.startswith(cell_id)]
        if len(hits) != 1:
            raise ValidationError(
                f"cell must be a unique prefix of one of the {len(self.cells)} cell ids "
                f"(see 'hcl-stats status'); got {cell_id!r} ({len(hits)} matches)."
            )
        return hits[0]

    def rep_rng(self, cell: Cell, rep: int) -> Callable[..., np.random.Generator]:
        """``rep_rng(stream, *, per_cell=False)`` for the task's ``generate``."""

        def make(stream: int, *, per_cell: bool = False) -> np.random.Generator:
            return unit_rng(self.seed, cell.key, 0 if per_cell else rep, stream)

        return make

    def generate(self, cell: Cell, rep: int) -> Draw:
        """Draw the truth and the data of one (cell, replicate)."""
        return self.task.generate(dict(cell.factors), self.rep_rng(cell, rep), self.sampler)


# ------------------------------------------------------------------ loading
_STUDY_KEYS = {"name", "question", "kind", "replications", "seed", "sampler", "metrics"}
_TOP_KEYS = {"study", "scenario", "grid", "estimators", "report"}


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, value: Any, rule: str) -> StudyConfigError:
        text = repr(value)
        if len(text) > 80:
            text = text[:77] + "..."
        return StudyConfigError(f"{self.path}: {key} must be {rule}; got {text}.")


def load_study(path: str | Path) -> Study:
    """Load and validate a study TOML file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Study

    Raises
    ------
    StudyConfigError
        On any invalid content; the message names the file, key path, value and
        rule.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> from hcl_stats.study import load_study
    >>> study = load_study("simulations/quick.toml")
    >>> study.name, len(study.cells) > 0
    ('quick', True)
    """
    path = Path(path)
    info = path.stat()  # FileNotFoundError if absent
    if not stat.S_ISREG(info.st_mode):
        raise StudyConfigError(
            f"{path}: must be a regular file (a TOML study file); got a "
            f"{'directory' if stat.S_ISDIR(info.st_mode) else 'device, pipe or socket'}."
        )
    if info.st_size > MAX_CONFIG_BYTES:
        raise StudyConfigError(
            f"{path}: must be at most {MAX_CONFIG_BYTES} bytes; got {info.st_size} bytes."
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise StudyConfigError(
                f"{path}: must be at most {MAX_CONFIG_BYTES} bytes; got more."
            )
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StudyConfigError(f"{path}: must be UTF-8 TOML text; got {exc}.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError(f"{path}: not valid TOML ({exc}).") from None
    return _parse(raw, path)


def _parse(raw: dict, path: Path) -> Study:
    ctx = _Ctx(path)
    for key in raw:
        if key not in _TOP_KEYS:
            raise ctx.fail(key, key, f"one of the tables {', '.join(sorted(_TOP_KEYS))}")
    head = raw.get("study", {})
    if not isinstance(head, dict):
        raise ctx.fail("study", head, "a table")
    for key in head:
        if key not in _STUDY_KEYS:
            raise ctx.fail(f"study.{key}", key, f"one of {', '.join(sorted(_STUDY_KEYS))}")
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not name or not all(
        c.isalnum() or c in "_-" for c in name
    ):
        raise ctx.fail("study.name", name, "a non-empty name of letters, digits, '_' or '-'")
    question = head.get("question", "")
    if not isinstance(question, str) or not question.strip():
        raise ctx.fail("study.question", question, "a non-empty string (the question the study answers)")
    kind = head.get("kind", "recovery")
    if kind not in _TASKS:
        raise ctx.fail("study.kind", kind, f"one of {', '.join(available_tasks())}")
    task = _TASKS[kind]
    reps = head.get("replications")
    if not _is_int(reps) or reps < 1:
        raise ctx.fail("study.replications", reps, "an integer >= 1")
    if reps > MAX_REPLICATIONS:
        raise ctx.fail("study.replications", reps, f"at most {MAX_REPLICATIONS} (hcl_stats.study.MAX_REPLICATIONS)")
    seed = head.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise ctx.fail("study.seed", seed, "a non-negative integer")
    sampler = head.get("sampler", "data")
    if sampler not in task.samplers:
        raise ctx.fail("study.sampler", sampler, f"one of {', '.join(task.samplers)} for kind {kind!r}")
    metrics = head.get("metrics", ["block_gram", "structure_gram", "overall_gram", "wall_time"])
    if not isinstance(metrics, list) or not metrics:
        raise ctx.fail("study.metrics", metrics, "a non-empty list of metric names")
    for i, m in enumerate(metrics):
        if m not in _METRICS:
            raise ctx.fail(f"study.metrics[{i}]", m, f"one of {', '.join(available_metrics())}")
    if len(set(metrics)) != len(metrics):
        raise ctx.fail("study.metrics", metrics, "a list without duplicates")

    # scenario
    scen_raw = raw.get("scenario", {})
    if not isinstance(scen_raw, dict):
        raise ctx.fail("scenario", scen_raw, "a table")
    scenario: dict[str, Any] = {}
    for key, value in scen_raw.items():
        if key not in task.defaults:
            raise ctx.fail(f"scenario.{key}", key, f"a scenario key of kind {kind!r} ({', '.join(task.defaults)})")
        scenario[key] = _norm(ctx, task, f"scenario.{key}", key, value)

    # grid
    grid_raw = raw.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise ctx.fail("grid", grid_raw, "a table")
    axes: list[list[dict[str, Any]]] = []
    grid_names: list[str] = []

    def factor_name(keypath: str, key: str) -> str:
        if key not in task.defaults:
            raise ctx.fail(keypath, key, f"a scenario key of kind {kind!r} ({', '.join(task.defaults)})")
        if key in grid_names:
            raise ctx.fail(keypath, key, "a factor that appears only once in the grid")
        grid_names.append(key)
        return key

    for key, values in grid_raw.items():
        if key == "zip":
            continue
        factor_name(f"grid.{key}", key)
        if not isinstance(values, list) or not values:
            raise ctx.fail(f"grid.{key}", values, "a non-empty list of values")
        axes.append([{key: _norm(ctx, task, f"grid.{key}[{i}]", key, v)} for i, v in enumerate(values)])
    zips = grid_raw.get("zip", [])
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list):
        raise ctx.fail("grid.zip", zips, "a table or an array of tables")
    for z, group in enumerate(zips):
        where = f"grid.zip[{z}]"
        if not isinstance(group, dict) or not group:
            raise ctx.fail(where, group, "a non-empty table of equal-length lists")
        lengths = set()
        for key, values in group.items():
            factor_name(f"{where}.{key}", key)
            if not isinstance(values, list) or not values:
                raise ctx.fail(f"{where}.{key}", values, "a non-empty list of values")
            lengths.add(len(values))
        if len(lengths) != 1:
            raise ctx.fail(where, {k: len(v) for k, v in group.items()}, "lists of equal length (zipped factors)")
        (length,) = lengths
        axes.append(
            [
                {k: _norm(ctx, task, f"{where}.{k}[{i}]", k, v[i]) for k, v in group.items()}
                for i in range(length)
            ]
        )
    for key in grid_names:
        scenario.pop(key, None)
    missing = [k for k, v in task.defaults.items() if v is None and k not in scenario and k not in grid_names]
    if missing:
        raise ctx.fail(f"scenario.{missing[0]}", None, f"given in [scenario] or [grid] (required for kind {kind!r})")
    fixed = {k: v for k, v in task.defaults.items() if v is not None}
    fixed = {k: _norm(ctx, task, f"scenario.{k}", k, v) for k, v in fixed.items()}
    fixed.update(scenario)

    n_cells = math.prod(len(axis) for axis in axes)
    if n_cells > MAX_CELLS:
        raise ctx.fail(
            "grid", {k: len(v) for k, v in grid_raw.items() if isinstance(v, list)} or n_cells,
            f"a grid of at most {MAX_CELLS} cells (hcl_stats.study.MAX_CELLS); it has "
            f"{n_cells}. Split the study into several files",
        )
    cells = []
    seen: dict[str, int] = {}
    for index, combo in enumerate(itertools.product(*axes)):
        varying: dict[str, Any] = {}
        for part in combo:
            varying.update(part)
        factors = {**fixed, **varying, "kind": kind, "sampler": sampler}
        if task.check is not None:
            try:
                task.check(factors)
            except ValueError as exc:
                shown = {k: factors[k] for k in varying} or factors
                raise ctx.fail(f"cell {index} ({_canonical(shown)})", "scenario", str(exc)) from None
        cell = Cell(index, factors, varying)
        if cell.id in seen:
            raise ctx.fail("grid", varying, f"a grid without duplicate cells (same as cell {seen[cell.id]})")
        seen[cell.id] = index
        cells.append(cell)

    # estimators
    est_raw = raw.get("estimators")
    if not isinstance(est_raw, dict) or not est_raw:
        raise ctx.fail("estimators", est_raw, "a non-empty table of [estimators.LABEL] tables")
    from . import estimators as est_mod

    specs: dict[str, EstimatorSpec] = {}
    for label, body in est_raw.items():
        where = f"estimators.{label}"
        if not isinstance(body, dict):
            raise ctx.fail(where, body, "a table")
        if not all(c.isalnum() or c in "_-" for c in label):
            raise ctx.fail(where, label, "a label of letters, digits, '_' or '-'")
        params = dict(body)
        ename = params.pop("name", label)
        if ename not in est_mod.available():
            raise ctx.fail(f"{where}.name", ename, f"one of the registered estimators {', '.join(est_mod.available())}")
        spec = EstimatorSpec(label, ename, params)
        try:
            spec.build()
        except TypeError as exc:
            raise ctx.fail(where, params, f"hyper-parameters accepted by {ename!r} ({exc})") from None
        except ValidationError as exc:
            raise ctx.fail(where, params, f"valid hyper-parameters ({exc})") from None
        cls = est_mod.get(ename)
        if cls.needs_data and sampler == "wishart":
            raise ctx.fail("study.sampler", sampler, f"'data' because estimator {label!r} needs the raw rows")
        specs[label] = spec
    if sampler == "wishart":
        try:
            from . import sampling  # noqa: F401
        except ImportError:
            raise ctx.fail("study.sampler", sampler, "'data' (hcl_stats.sampling is not available in this version)") from None

    report = raw.get("report", {})
    if not isinstance(report, dict):
        raise ctx.fail("report", report, "a table")
    _check_report_names(ctx, report)
    semantic = {
        "name": name,
        "kind": kind,
        "replications": reps,
        "seed": seed,
        "sampler": sampler,
        "metrics": metrics,
        "cells": [c.digest for c in cells],
        "estimators": {k: v.digest for k, v in specs.items()},
    }
    return Study(
        path=path,
        name=name,
        question=question.strip(),
        kind=kind,
        replications=int(reps),
        seed=int(seed),
        sampler=sampler,
        metrics=tuple(metrics),
        scenario=fixed,
        grid=tuple(grid_names),
        cells=tuple(cells),
        estimators=specs,
        report=report,
        digest=hashlib.sha256(_canonical(semantic).encode()).hexdigest(),
    )


def _check_report_names(ctx: _Ctx, report: Mapping[str, Any]) -> None:
    """Every ``report.<section>[i].name`` must be a safe file name (:data:`SAFE_NAME`)."""
    for section, entries in report.items():
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and "name" in entry and not is_safe_name(entry["name"]):
                raise ctx.fail(
                    f"report.{section}[{i}].name", entry["name"],
                    "a file name of letters, digits, '_', '.' or '-' that does not start "
                    "with '.' (no '/', no '..'; it names a file inside the output directory)",
                )


def _norm(ctx: _Ctx, task: Task, keypath: str, key: str, value: Any) -> Any:
    try:
        return task.normalize(key, value)
    except ValueError as exc:
        raise ctx.fail(keypath, value, str(exc)) from None


# ------------------------------------------------------------------ plug-ins
#: Package modules that register tasks, metrics or estimators for studies. They are
#: imported here, at the end of this module, so that every process that loads a
#: study (including spawned and Dask workers) sees the same registries. A module
#: of this list that is absent from an installation is skipped.
PLUGIN_MODULES = ("hcl_stats._missing_study", "hcl_stats._structure_study", "hcl_stats._study_theory")


def _load_plugins() -> None:
    import importlib

    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


_load_plugins()
