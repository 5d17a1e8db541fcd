"""Typed ``[report]`` specs of a study file, checked when the study is loaded.

``hcl-stats validate`` (and every command that loads a study) parses each
``[[report.figures]]``, ``[[report.tables]]``, ``[[report.rates]]`` and
``[[report.terms]]`` entry into a frozen spec and refuses, with a
:class:`~hcl_stats.exceptions.StudyConfigError` naming the key path, the value
and the rule: an unknown key, a metric the study does not compute, a figure
without ``x`` or whose ``x`` is not a grid factor, a non-boolean ``logx`` /
``logy``, and a figure's ``extra_panels`` / ``references`` or a table's
``reference_columns`` entry with an unknown key, a metric the study does not
compute or a missing ``label`` / ``name``. Before, such a figure failed only after the run, in ``hcl-stats report``.

The renderers (:func:`hcl_stats.plotting.line_figure`,
:func:`hcl_stats.tables.render_table`, :mod:`hcl_stats.theory.rates`) read the
``raw`` mapping each spec keeps, so the artefacts are unchanged.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import StudyConfigError

__all__ = [
    "SAFE_NAME",
    "FigureSpec",
    "RateSpec",
    "ReportSpec",
    "TableSpec",
    "TermsSpec",
    "is_safe_name",
    "parse_report",
]

#: Rule for every name that becomes a file name (``[report]`` figure and table
#: names): letters, digits, ``_``, ``.`` and ``-``, not starting with a dot, so that
#: no name can leave the output directory (no separators, no ``..``).
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")

Fail = Callable[[str, Any, str], StudyConfigError]


def is_safe_name(name: Any) -> bool:
    """Whether ``name`` may be used as a file name inside an output directory.

    Examples
    --------
    >>> from hcl_stats.study import is_safe_name
    >>> is_safe_name("errors_by_n"), is_safe_name("../../x"), is_safe_name(".hidden")
    (True, False, False)
    """
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class FigureSpec:
    """One ``[[report.figures]]`` entry: ``metric`` against grid factor ``x``."""

    name: str
    x: str
    metric: str
    logx: bool = False
    logy: bool = False
    errorbar: str = "mcse"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TableSpec:
    """One ``[[report.tables]]`` entry: rows of ``metrics``, columns of estimators."""

    name: str
    metrics: tuple[str, ...]
    group: str | None = None
    stat: str = "mean_sd"
    digits: int = 2
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RateSpec:
    """One ``[[report.rates]]`` entry: the slope of log ``metric`` on log ``x``."""

    name: str
    metric: str
    x: str = "n_samples"
    expected: float = -0.5
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TermsSpec:
    """One ``[[report.terms]]`` entry: constants of an additive bound."""

    name: str
    metric: str
    terms: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ReportSpec:
    """All ``[report]`` entries of a study, in file order."""

    figures: tuple[FigureSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    rates: tuple[RateSpec, ...] = ()
    terms: tuple[TermsSpec, ...] = ()


_KEYS = {
    "figures": {"name", "x", "metric", "labels", "errorbar", "estimators", "logx", "logy",
                "reference_slope", "where", "ylim", "titles", "extra_panels", "references"},
    "tables": {"name", "metrics", "group", "group_axis", "group_values", "stat", "digits",
               "where", "labels", "estimators", "caption", "reference_columns"},
    "rates": {"name", "metric", "label", "labels", "x", "by", "expected", "bound"},
    "terms": {"name", "metric", "terms", "terms_metric", "group", "labels"},
}


class _Entry:
    """Typed reads of one report entry; each failure names its key path."""

    def __init__(self, fail: Fail, where: str, body: Mapping[str, Any]) -> None:
        self.fail, self.where, self.body = fail, where, body

    def err(self, key: str, value: Any, rule: str) -> StudyConfigError:
        return self.fail(f"{self.where}.{key}", value, rule)

    def name(self) -> str:
        name = self.body.get("name")
        if not is_safe_name(name):
            raise self.err(
                "name", name,
                "a file name of letters, digits, '_', '.' or '-' that does not start "
                "with '.' (no '/', no '..'; it names a file inside the output directory)",
            )
        return name

    def metric(self, key: str, metrics: Sequence[str], default: Any = None) -> str:
        value = self.body.get(key, default)
        if value not in metrics:
            raise self.err(key, value, f"a metric of study.metrics ({', '.join(metrics)})")
        return value

    def factor(self, key: str, grid: Sequence[str], required: bool, default: Any = None) -> Any:
        if key not in self.body:
            if required:
                raise self.err(key, None, f"given: a grid factor ({', '.join(grid) or 'none'})")
            return default
        value = self.body[key]
        if value not in grid:
            raise self.err(key, value, f"a grid factor ({', '.join(grid) or 'none'})")
        return value

    def flag(self, key: str) -> bool:
        value = self.body.get(key, False)
        if not isinstance(value, bool):
            raise self.err(key, value, "true or false")
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.body.get(key, options[0])
        if value not in options:
            raise self.err(key, value, f"one of {', '.join(repr(o) for o in options)}")
        return value


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _sub_tables(e: _Entry, key: str, metrics: Sequence[str], required: Sequence[str],
                optional: Sequence[str]) -> None:
    """Check ``key``: a list of tables with a study ``metric`` and string fields."""
    items = e.body.get(key, [])
    keys = sorted({"metric", *required, *optional})
    if not isinstance(items, list):
        raise e.err(key, items, f"an array of tables with the keys {', '.join(keys)}")
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise e.err(where, item, f"a table with the keys {', '.join(keys)}")
        unknown = sorted(set(item) - set(keys))
        if unknown:
            raise e.err(f"{where}.{unknown[0]}", unknown[0], f"one of the keys {', '.join(keys)}")
        if item.get("metric") not in metrics:
            raise e.err(f"{where}.metric", item.get("metric"),
                        f"a metric of study.metrics ({', '.join(metrics)})")
        for k in (*required, *optional):
            if (k in required or k in item) and not (isinstance(item.get(k), str) and item[k]):
                raise e.err(f"{where}.{k}", item.get(k), "a non-empty string")


def _figure(e: _Entry, metrics: Sequence[str], grid: Sequence[str]) -> FigureSpec:
    _sub_tables(e, "extra_panels", metrics, ("label",), ())
    _sub_tables(e, "references", metrics, ("name",), ("label", "on"))
    return FigureSpec(
        name=e.name(), x=e.factor("x", grid, required=True), metric=e.metric("metric", metrics),
        logx=e.flag("logx"), logy=e.flag("logy"), errorbar=e.choice("errorbar", ("mcse", "sd")),
        raw=e.body,
    )


def _table(e: _Entry, metrics: Sequence[str], grid: Sequence[str]) -> TableSpec:
    names = e.body.get("metrics")
    if not isinstance(names, list) or not names:
        raise e.err("metrics", names, "a non-empty list of metrics of study.metrics")
    for i, m in enumerate(names):
        if m not in metrics:
            raise e.err(f"metrics[{i}]", m, f"a metric of study.metrics ({', '.join(metrics)})")
    digits = e.body.get("digits", 2)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 12:
        raise e.err("digits", digits, "an integer in 0..12")
    e.choice("group_axis", ("columns", "rows"))
    _sub_tables(e, "reference_columns", metrics, ("name",), ())
    return TableSpec(
        name=e.name(), metrics=tuple(names), group=e.factor("group", grid, required=False),
        stat=e.choice("stat", ("mean_sd", "mean_mcse", "mean")), digits=digits, raw=e.body,
    )


def _rate(e: _Entry, metrics: Sequence[str], grid: Sequence[str]) -> RateSpec:
    expected = e.body.get("expected", -0.5)
    if not _is_number(expected):
        raise e.err("expected", expected, "a number (the expected log-log slope)")
    x = e.body.get("x", "n_samples")
    derived = ("d",) if "dims" in grid else ()  # d = sum of dims, computed per row
    if x not in (*grid, *derived):
        raise e.err("x", x, f"a grid factor ({', '.join((*grid, *derived)) or 'none'})")
    for i, b in enumerate(e.body.get("by", [])):
        if b not in (*grid, *derived):
            raise e.err(f"by[{i}]", b, f"a grid factor ({', '.join((*grid, *derived)) or 'none'})")
    return RateSpec(name=e.name(), metric=e.metric("metric", metrics), x=x,
                    expected=float(expected), raw=e.body)


def _terms(e: _Entry, metrics: Sequence[str], grid: Sequence[str]) -> TermsSpec:
    terms = e.body.get("terms")
    if not isinstance(terms, list) or not terms or not all(isinstance(t, str) for t in terms):
        raise e.err("terms", terms, "a non-empty list of term labels")
    e.metric("terms_metric", metrics, default="ds_terms")
    e.factor("group", grid, required=False)
    return TermsSpec(name=e.name(), metric=e.metric("metric", metrics), terms=tuple(terms),
                     raw=e.body)


_PARSERS = {"figures": _figure, "tables": _table, "rates": _rate, "terms": _terms}


def parse_report(
    report: Any, fail: Fail, *, metrics: Sequence[str], grid: Sequence[str]
) -> ReportSpec:
    """Parse and check the ``[report]`` table of a study file.

    Parameters
    ----------
    report : mapping
        The raw ``[report]`` table (``{}`` when absent).
    fail : callable
        ``fail(keypath, value, rule) -> StudyConfigError``.
    metrics : sequence of str
        The study's metrics (a report can show only these).
    grid : sequence of str
        The study's grid factors (figure ``x``, table ``group``).

    Returns
    -------
    ReportSpec

    Raises
    ------
    StudyConfigError
        On an unknown section or key, or a value that breaks its rule.

    Examples
    --------
    >>> from hcl_stats.exceptions import StudyConfigError
    >>> fail = lambda key, value, rule: StudyConfigError(f"{key} must be {rule}; got {value!r}.")
    >>> spec = parse_report({"figures": [{"name": "f", "x": "n_samples", "metric": "rank"}]},
    ...                     fail, metrics=["rank"], grid=["n_samples"])
    >>> spec.figures[0].x, spec.figures[0].logy
    ('n_samples', False)
    >>> parse_report({"figures": [{"name": "f", "metric": "rank"}]}, fail,
    ...              metrics=["rank"], grid=["n_samples"])
    Traceback (most recent call last):
    ...
    hcl_stats.exceptions.StudyConfigError: report.figures[0].x must be given: a grid factor (n_samples); got None.
    """
    if not isinstance(report, Mapping):
        raise fail("report", report, "a table")
    parsed: dict[str, list[Any]] = {k: [] for k in _PARSERS}
    for section, entries in report.items():
        if section not in _PARSERS:
            raise fail(f"report.{section}", section, f"one of {', '.join(_PARSERS)}")
        if not isinstance(entries, list):
            raise fail(f"report.{section}", entries, "an array of tables")
        for i, body in enumerate(entries):
            where = f"report.{section}[{i}]"
            if not isinstance(body, Mapping):
                raise fail(where, body, "a table")
            unknown = sorted(set(body) - _KEYS[section])
            if unknown:
                raise fail(f"{where}.{unknown[0]}", unknown[0],
                           f"one of the keys {', '.join(sorted(_KEYS[section]))}")
            parsed[section].append(_PARSERS[section](_Entry(fail, where, body), metrics, grid))
    return ReportSpec(**{k: tuple(v) for k, v in parsed.items()})
