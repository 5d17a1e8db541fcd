"""Monte Carlo study configs: loading, validation, grid expansion and seeding.

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

Parsing runs one section at a time (:func:`parse_header`, :func:`parse_scenario`,
:func:`parse_grid`, :func:`expand_cells`, :func:`parse_estimators` and
:func:`~hcl_stats.study.specs.parse_report`); the registries of tasks, metrics
and estimators are in :mod:`hcl_stats.study.registry`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import estimators
from .._validation import warn_renamed
from ..exceptions import StudyConfigError, ValidationError
from .registry import (
    Draw,
    EstimatorSpec,
    Task,
    available_metrics,
    available_tasks,
    canonical_json,
    get_task,
    unit_rng,
)
from .specs import ReportSpec, parse_report
from .tasks.recovery import is_int

__all__ = [
    "MAX_CELLS",
    "MAX_CONFIG_BYTES",
    "MAX_REPLICATIONS",
    "Cell",
    "Header",
    "Study",
    "expand_cells",
    "factor_digest",
    "fixed_factors",
    "load_study",
    "parse_estimators",
    "parse_grid",
    "parse_header",
    "parse_scenario",
    "parse_study",
]

#: Limits of a study file, so that a small hostile or careless file cannot make
#: ``validate`` or ``run`` hang or exhaust memory: the file size in bytes, the number
#: of cells of the grid and the number of replications.
MAX_CONFIG_BYTES = 1_000_000
MAX_CELLS = 10_000
MAX_REPLICATIONS = 100_000


def factor_digest(factors: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of a cell's data-generating factors.

    Examples
    --------
    The digest depends on the factors, not on the order they are listed in:

    >>> from hcl_stats.study.config import factor_digest
    >>> a = factor_digest({"dims": [3, 4], "n_samples": 100})
    >>> a == factor_digest({"n_samples": 100, "dims": [3, 4]}), len(a)
    (True, 64)
    >>> a == factor_digest({"dims": [3, 4], "n_samples": 200})
    False
    """
    return hashlib.sha256(canonical_json(dict(factors)).encode()).hexdigest()


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
        The raw ``[report]`` table (read by :mod:`hcl_stats.plotting`,
        :mod:`hcl_stats.tables` and :mod:`hcl_stats.theory.rates`).
    report_spec : ReportSpec
        The same entries parsed and checked (:mod:`hcl_stats.study.specs`).
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
    report_spec: ReportSpec = field(default_factory=ReportSpec, compare=False)

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
    """Where a study file is read from; builds the errors that name it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, value: Any, rule: str) -> StudyConfigError:
        """The error ``<file>: <key> must be <rule>; got <value>.``."""
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
    return parse_study(raw, path)


@dataclass(frozen=True)
class Header:
    """The ``[study]`` table, checked: what every other section is read against."""

    name: str
    question: str
    kind: str
    task: Task
    replications: int
    seed: int
    sampler: str
    metrics: tuple[str, ...]


def parse_header(raw: Mapping[str, Any], ctx: _Ctx) -> Header:
    """Check the top-level tables and parse ``[study]``.

    Parameters
    ----------
    raw : mapping
        The whole TOML document.
    ctx : _Ctx
        Names the file in every error.

    Returns
    -------
    Header
    """
    for key in raw:
        if key not in _TOP_KEYS:
            raise ctx.fail(key, key, f"one of the tables {', '.join(sorted(_TOP_KEYS))}")
    head = raw.get("study", {})
    if not isinstance(head, dict):
        raise ctx.fail("study", head, "a table")
    for key in head:
        if key not in _STUDY_KEYS:
            raise ctx.fail(f"study.{key}", key, f"one of {', '.join(sorted(_STUDY_KEYS))}")
    name = head.get("name", ctx.path.stem)
    if not isinstance(name, str) or not name or not all(
        c.isalnum() or c in "_-" for c in name
    ):
        raise ctx.fail("study.name", name, "a non-empty name of letters, digits, '_' or '-'")
    question = head.get("question", "")
    if not isinstance(question, str) or not question.strip():
        raise ctx.fail("study.question", question, "a non-empty string (the question the study answers)")
    kind = head.get("kind", "recovery")
    if kind not in available_tasks():
        raise ctx.fail("study.kind", kind, f"one of {', '.join(available_tasks())}")
    task = get_task(kind)
    reps = head.get("replications")
    if not is_int(reps) or reps < 1:
        raise ctx.fail("study.replications", reps, "an integer >= 1")
    if reps > MAX_REPLICATIONS:
        raise ctx.fail("study.replications", reps, f"at most {MAX_REPLICATIONS} (hcl_stats.study.MAX_REPLICATIONS)")
    seed = head.get("seed", 0)
    if not is_int(seed) or seed < 0:
        raise ctx.fail("study.seed", seed, "a non-negative integer")
    sampler = head.get("sampler", "data")
    if sampler not in task.samplers:
        raise ctx.fail("study.sampler", sampler, f"one of {', '.join(task.samplers)} for kind {kind!r}")
    metrics = head.get("metrics", ["block_gram", "structure_gram", "overall_gram", "wall_time"])
    if not isinstance(metrics, list) or not metrics:
        raise ctx.fail("study.metrics", metrics, "a non-empty list of metric names")
    for i, m in enumerate(metrics):
        if m not in available_metrics():
            raise ctx.fail(f"study.metrics[{i}]", m, f"one of {', '.join(available_metrics())}")
    if len(set(metrics)) != len(metrics):
        raise ctx.fail("study.metrics", metrics, "a list without duplicates")
    return Header(name, question, kind, task, int(reps), int(seed), sampler, tuple(metrics))


def _scenario_key(ctx: _Ctx, head: Header, keypath: str, key: str) -> str:
    if key not in head.task.defaults:
        raise ctx.fail(keypath, key, f"a scenario key of kind {head.kind!r} ({', '.join(head.task.defaults)})")
    return key


def parse_scenario(raw: Mapping[str, Any], ctx: _Ctx, head: Header) -> dict[str, Any]:
    """The ``[scenario]`` table: fixed factors, each normalised by the task.

    Returns
    -------
    dict
        Only the keys the file gives (the task defaults are added by
        :func:`fixed_factors`).
    """
    scen_raw = raw.get("scenario", {})
    if not isinstance(scen_raw, dict):
        raise ctx.fail("scenario", scen_raw, "a table")
    return {
        _scenario_key(ctx, head, f"scenario.{key}", key): _norm(ctx, head.task, f"scenario.{key}", key, value)
        for key, value in scen_raw.items()
    }


def parse_grid(
    raw: Mapping[str, Any], ctx: _Ctx, head: Header
) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """The ``[grid]`` table: one axis per plain factor, one per ``[[grid.zip]]`` group.

    Returns
    -------
    axes : list of list of dict
        Each axis lists its points; a point maps factor names to normalised values.
    names : list of str
        The grid factors in file order.
    """
    grid_raw = raw.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise ctx.fail("grid", grid_raw, "a table")
    axes: list[list[dict[str, Any]]] = []
    names: list[str] = []
    task = head.task

    def factor_name(keypath: str, key: str) -> str:
        _scenario_key(ctx, head, keypath, key)
        if key in names:
            raise ctx.fail(keypath, key, "a factor that appears only once in the grid")
        names.append(key)
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
    return axes, names


def fixed_factors(
    ctx: _Ctx, head: Header, scenario: dict[str, Any], grid_names: list[str]
) -> dict[str, Any]:
    """Task defaults updated by ``[scenario]``, without the grid factors.

    Raises
    ------
    StudyConfigError
        If a required key (default None) is neither in the scenario nor the grid.
    """
    task = head.task
    scenario = {k: v for k, v in scenario.items() if k not in grid_names}
    missing = [k for k, v in task.defaults.items() if v is None and k not in scenario and k not in grid_names]
    if missing:
        raise ctx.fail(f"scenario.{missing[0]}", None, f"given in [scenario] or [grid] (required for kind {head.kind!r})")
    fixed = {k: v for k, v in task.defaults.items() if v is not None}
    fixed = {k: _norm(ctx, task, f"scenario.{k}", k, v) for k, v in fixed.items()}
    fixed.update(scenario)
    return fixed


def expand_cells(
    ctx: _Ctx, head: Header, fixed: Mapping[str, Any], axes: list[list[dict[str, Any]]],
    grid_raw: Any,
) -> list[Cell]:
    """The cells of the grid in order, each checked by the task.

    Raises
    ------
    StudyConfigError
        If the grid has more than :data:`MAX_CELLS` cells, a cell fails the
        task's check, or two cells have the same factors.
    """
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
        factors = {**fixed, **varying, "kind": head.kind, "sampler": head.sampler}
        if head.task.check is not None:
            try:
                head.task.check(factors)
            except ValueError as exc:
                shown = {k: factors[k] for k in varying} or factors
                raise ctx.fail(f"cell {index} ({canonical_json(shown)})", "scenario", str(exc)) from None
        cell = Cell(index, factors, varying)
        if cell.id in seen:
            raise ctx.fail("grid", varying, f"a grid without duplicate cells (same as cell {seen[cell.id]})")
        seen[cell.id] = index
        cells.append(cell)
    return cells


def parse_estimators(raw: Mapping[str, Any], ctx: _Ctx, head: Header) -> dict[str, EstimatorSpec]:
    """The ``[estimators.LABEL]`` tables, each built once to check its hyper-parameters.

    Returns
    -------
    dict[str, EstimatorSpec]
        In file order.
    """
    est_raw = raw.get("estimators")
    if not isinstance(est_raw, dict) or not est_raw:
        raise ctx.fail("estimators", est_raw, "a non-empty table of [estimators.LABEL] tables")
    specs: dict[str, EstimatorSpec] = {}
    for label, body in est_raw.items():
        where = f"estimators.{label}"
        if not isinstance(body, dict):
            raise ctx.fail(where, body, "a table")
        if not all(c.isalnum() or c in "_-" for c in label):
            raise ctx.fail(where, label, "a label of letters, digits, '_' or '-'")
        params = dict(body)
        if "noise_var" in params:
            if "noise_rule" in params:
                raise ctx.fail(f"{where}.noise_var", params["noise_var"], "absent when noise_rule is given (noise_var is its older spelling)")
            warn_renamed(f"{where}.noise_var", f"{where}.noise_rule", category=FutureWarning)
            params["noise_rule"] = params.pop("noise_var")
        ename = params.pop("name", label)
        if ename not in estimators.available():
            raise ctx.fail(f"{where}.name", ename, f"one of the registered estimators {', '.join(estimators.available())}")
        spec = EstimatorSpec(label, ename, params)
        try:
            spec.build()
        except TypeError as exc:
            raise ctx.fail(where, params, f"hyper-parameters accepted by {ename!r} ({exc})") from None
        except ValidationError as exc:
            raise ctx.fail(where, params, f"valid hyper-parameters ({exc})") from None
        if estimators.get(ename).needs_data and head.sampler == "wishart":
            raise ctx.fail("study.sampler", head.sampler, f"'data' because estimator {label!r} needs the raw rows")
        specs[label] = spec
    return specs


def parse_study(raw: dict, path: Path) -> Study:
    """Build a :class:`Study` from a parsed TOML document, one section at a time.

    Parameters
    ----------
    raw : dict
        The TOML document.
    path : Path
        The file it came from (named in every error).

    Returns
    -------
    Study

    Raises
    ------
    StudyConfigError
        On any invalid content.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> study.name, len(study.cells), list(study.estimators)[:2]
    ('quick', 5, ['naive', 'schur'])
    """
    ctx = _Ctx(path)
    head = parse_header(raw, ctx)
    scenario = parse_scenario(raw, ctx, head)
    axes, grid_names = parse_grid(raw, ctx, head)
    fixed = fixed_factors(ctx, head, scenario, grid_names)
    cells = expand_cells(ctx, head, fixed, axes, raw.get("grid", {}))
    specs = parse_estimators(raw, ctx, head)
    report = raw.get("report", {})
    report_spec = parse_report(report, ctx.fail, metrics=head.metrics, grid=grid_names)
    semantic = {
        "name": head.name,
        "kind": head.kind,
        "replications": head.replications,
        "seed": head.seed,
        "sampler": head.sampler,
        "metrics": list(head.metrics),
        "cells": [c.digest for c in cells],
        "estimators": {k: v.digest for k, v in specs.items()},
    }
    return Study(
        path=path,
        name=head.name,
        question=head.question.strip(),
        kind=head.kind,
        replications=head.replications,
        seed=head.seed,
        sampler=head.sampler,
        metrics=head.metrics,
        scenario=fixed,
        grid=tuple(grid_names),
        cells=tuple(cells),
        estimators=specs,
        report=report,
        digest=hashlib.sha256(canonical_json(semantic).encode()).hexdigest(),
        report_spec=report_spec,
    )


def _norm(ctx: _Ctx, task: Task, keypath: str, key: str, value: Any) -> Any:
    """``task.normalize(key, value)``, its ValueError turned into a StudyConfigError."""
    try:
        return task.normalize(key, value)
    except ValueError as exc:
        raise ctx.fail(keypath, value, str(exc)) from None


