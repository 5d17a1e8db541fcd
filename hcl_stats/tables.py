"""Publication tables (LaTeX booktabs and Markdown) of a study summary.

The summary (:func:`hcl_stats.study.summary.summarize`) has one row per
cell x estimator x metric x label. Table functions take it and return strings,
rounded for display by :func:`format_value`; row titles come from
:mod:`hcl_stats._metric_info`.

A table is described in the study config::

    [[report.tables]]
    name = "gram_errors"               # file stem: <name>.tex and <name>.md
    metrics = ["block_gram", "overall_gram"]   # rows: every label of these metrics
    group = "n_samples"                # optional: one column group per value
    group_axis = "columns"             # or "rows": one block of rows per value
    group_values = [500, 8000]         # optional: only these groups
    stat = "mean_sd"                   # "mean_sd" (mean ± sd), "mean_mcse" or "mean"
    digits = 2                         # significant decimals shown
    where = { latent_cov = 0.0 }       # optional filter on the grid values
    labels = { support = ["structure_precision", "structure_recall"] }  # optional
    estimators = ["naive", "schur"]    # optional: columns (default: all, config order)
    reference_columns = [{ metric = "oracle_floor", name = "oracle floor" }]  # optional
    caption = "..."

A reference column, before the estimators, shows for each row ``(metric, label)``
the reference metric's mean at the same label (and group), averaged over the
estimators that recorded it (a truth-only quantity such as ``oracle_floor`` is the
same for all of them); empty where the reference has no such label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._labels import cell_value, label_sort_key
from ._metric_info import factor_info, metric_info

__all__ = [
    "SUMMARY_COLUMNS",
    "SUMMARY_DIGITS",
    "format_value",
    "label_sort_key",
    "render_table",
    "round_significant",
]

#: Statistic columns of ``summary.csv`` (after the cell, grid and key columns).
SUMMARY_COLUMNS = ("n_ok", "n_failed", "mean", "sd", "mcse", "median")


def __getattr__(name: str) -> Any:
    # summarize moved to hcl_stats.study.summary (it needs the store, tables do not)
    if name == "summarize":
        import warnings

        warnings.warn(
            "hcl_stats.tables.summarize moved to hcl_stats.study.summary.summarize",
            DeprecationWarning, stacklevel=2,
        )
        from .study.summary import summarize

        return summarize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _title(metric: str) -> str:
    """Row title of ``metric`` (from :mod:`hcl_stats._metric_info`), unit in brackets."""
    info = metric_info(metric)
    return f"{info.title} ({info.unit})" if info.unit else info.title


#: Significant digits of the statistics written to ``summary.csv``: the Monte Carlo
#: error is orders of magnitude larger, and rounding here removes floating-point noise
#: (~1e-12 between runs, BLAS order) from the committed file.
SUMMARY_DIGITS = 6
def round_significant(value: float, digits: int = SUMMARY_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (NaN and inf unchanged).

    Examples
    --------
    >>> round_significant(0.40393712190159181)
    0.403937
    >>> round_significant(1234567.0, 3)
    1230000.0
    """
    if not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def format_value(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals (``"--"`` for NaN); the only rounding step.

    Examples
    --------
    >>> from hcl_stats.tables import format_value
    >>> format_value(3.14159, 2), format_value(float("nan"), 2)
    ('3.14', '--')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _cell_text(row: Mapping[str, Any], stat: str, digits: int, latex: bool) -> str:
    mean = format_value(row["mean"], digits)
    if stat == "mean":
        return mean
    other = row["sd"] if stat == "mean_sd" else row["mcse"]
    if mean == "--":
        return mean
    pm = r" $\pm$ " if latex else " ± "
    return mean + pm + format_value(other, digits)


def _filter(summary: Any, where: Mapping[str, Any] | None) -> Any:
    if not where:
        return summary
    mask = None
    for key, value in where.items():
        if key not in summary.columns:
            raise KeyError(f"report table 'where' key {key!r} is not a grid factor")
        m = summary[key].astype(str) == str(cell_value(value))
        mask = m if mask is None else mask & m
    return summary[mask]


def render_table(
    summary: Any,
    spec: Mapping[str, Any],
    estimator_order: Sequence[str],
) -> tuple[str, str]:
    """Render one ``[[report.tables]]`` spec as ``(latex, markdown)`` strings.

    Parameters
    ----------
    summary : pandas.DataFrame
        As returned by :func:`summarize` (or read back from ``summary.csv``).
    spec : mapping
        See the module docstring.
    estimator_order : sequence of str
        Column order of the estimators.

    Returns
    -------
    (str, str)
        A LaTeX ``table`` with ``booktabs`` rules and a Markdown table; both end with
        a newline and contain no timestamps.

    Examples
    --------
    >>> import pandas as pd
    >>> from hcl_stats.tables import render_table
    >>> rows = [{"cell_id": "c0", "n_samples": 500, "estimator": est,
    ...          "metric": "overall_gram", "label": "overall", "n_ok": 10,
    ...          "n_failed": 0, "mean": v, "sd": v / 10, "mcse": v / 30, "median": v}
    ...         for est, v in [("naive", 0.1234), ("schur", 0.0567)]]
    >>> spec = {"name": "t", "metrics": ["overall_gram"], "stat": "mean", "digits": 3}
    >>> latex, md = render_table(pd.DataFrame(rows), spec, ["naive", "schur"])
    >>> print(md.splitlines()[2])
    | overall Gram error | overall | 0.123 | 0.057 |
    >>> "label{tab:t}" in latex
    True
    """
    metrics = list(spec.get("metrics", []))
    group = spec.get("group")
    stat = spec.get("stat", "mean_sd")
    if stat not in ("mean_sd", "mean_mcse", "mean"):
        raise ValueError(f"report table stat must be 'mean_sd', 'mean_mcse' or 'mean'; got {stat!r}")
    digits = int(spec.get("digits", 2))
    data = _filter(summary, spec.get("where"))
    refs = _reference_values(data, spec.get("reference_columns", []), group)
    data = data[data["metric"].isin(metrics)]
    ests = [e for e in (spec.get("estimators") or estimator_order) if e in set(data["estimator"])]
    clash = set(refs) & set(ests)
    if clash:
        raise ValueError(f"report table reference column name {sorted(clash)[0]!r} is an "
                         "estimator label; choose another name")
    ests = [*refs, *ests]
    groups = [None]
    if group:
        groups = list(dict.fromkeys(data[group].tolist()))
        if "group_values" in spec:
            wanted = {str(cell_value(v)) for v in spec["group_values"]}
            groups = [g for g in groups if str(g) in wanted]
    lookup = {}
    for row in data.to_dict("records"):
        key = (row["metric"], row["label"], row[group] if group else None, row["estimator"])
        if key in lookup:
            raise ValueError(
                f"report table {spec.get('name')!r} has several cells per entry; add a "
                "'where' filter or a 'group' factor"
            )
        lookup[key] = row
    row_keys = []
    keep = spec.get("labels", {})
    for metric in metrics:
        labels = sorted(set(data.loc[data["metric"] == metric, "label"]), key=label_sort_key)
        if metric in keep:
            labels = [lab for lab in keep[metric] if lab in labels]
        row_keys += [(metric, lab) for lab in labels]
    columns = [(g, e) for g in groups for e in ests]

    def entry(metric, label, g, e, latex):
        if e in refs:
            value = refs[e].get((label, g))
            return "" if value is None else format_value(value, digits)
        row = lookup.get((metric, label, g, e))
        return "" if row is None else _cell_text(row, stat, digits, latex)

    stat_text = {"mean_sd": "mean ± sd", "mean_mcse": "mean ± MC s.e.", "mean": "mean"}[stat]
    n_info = sorted({int(v) for v in data["n_ok"]}) if len(data) else []
    n_text = f"n_ok = {n_info[0]}" if len(n_info) == 1 else f"n_ok in {n_info}"
    caption = spec.get("caption", "")
    caption_full = f"{caption} Entries: {stat_text} over replications ({n_text}).".strip()

    if group and spec.get("group_axis", "columns") == "rows":
        return _render_grouped_rows(
            spec, group, groups, ests, row_keys, entry, caption_full
        )
    if spec.get("group_axis", "columns") not in ("columns", "rows"):
        raise ValueError(
            f"report table group_axis must be 'columns' or 'rows'; got {spec['group_axis']!r}"
        )

    # Markdown
    def md_group(g):
        return "" if g is None else f"{group}={g} "

    head = ["metric", "label"] + [f"{md_group(g)}{e}" for g, e in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(columns)) + "|"]
    for metric, label in row_keys:
        cells = [_title(metric), label.replace("|", r"\|")]
        cells += [entry(metric, label, g, e, False) for g, e in columns]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n\n" + caption_full + "\n"

    colgroups = [(g, list(ests)) for g in groups] if group else [(None, list(ests))]
    latex = _latex_table(spec, group, colgroups, [None], row_keys, entry, caption_full)
    return latex, markdown


#: Characters LaTeX treats specially, and their text-mode escapes.
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}",
}
#: Non-ASCII symbols that the default pdflatex fonts lack, as math.
_TEX_UNICODE = {
    "±": r"$\pm$", "×": r"$\times$", "≤": r"$\le$", "≥": r"$\ge$", "−": r"$-$", "≈": r"$\approx$",
    "σ": r"$\sigma$", "ρ": r"$\rho$", "β": r"$\beta$", "λ": r"$\lambda$", "μ": r"$\mu$",
    "θ": r"$\theta$", "Θ": r"$\Theta$", "Σ": r"$\Sigma$", "²": r"$^2$", "³": r"$^3$",
    "∝": r"$\propto$", "∞": r"$\infty$", "→": r"$\to$", "…": r"\dots{}",
}
_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "nu",
          "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta",
          "Lambda", "Sigma", "Phi", "Psi", "Omega")
_SCRIPT = r"(?:\{[A-Za-z0-9,]+\}|[A-Za-z0-9]+)"
#: An ASCII math token of a caption: ``sigma^2``, ``r_S``, ``W_hat^T``, a bare Greek name.
_MATH_ATOM = re.compile(
    rf"(?<![A-Za-z0-9\\])(?:[A-Za-z]+(?:[_^]{_SCRIPT})+|(?:{'|'.join(_GREEK)}))(?![A-Za-z0-9])"
)
_NORM = re.compile(r"\|\|([^|]+)\|\|(?:_(\w+))?")


def _tex(s: Any) -> str:
    """``s`` as LaTeX text: every special character escaped (the only escaping step)."""
    return "".join(_TEX_ESCAPES.get(ch) or _TEX_UNICODE.get(ch) or ch for ch in str(s))


def _math_atom(token: str) -> str:
    """An ASCII math token (``sigma_y^2``, ``W_hat``, ``n_ok``) as LaTeX math (no ``$``)."""
    parts = re.split(r"([_^])", token)
    base, rest = parts[0], parts[1:]
    hat = False
    scripts: dict[str, list[str]] = {"_": [], "^": []}
    for op, arg in zip(rest[::2], rest[1::2], strict=True):
        arg = arg.strip("{}")
        if op == "_" and arg == "hat":
            hat = True
            continue
        if op == "^" and arg == "T":
            arg = r"\top"
        elif arg in _GREEK:
            arg = "\\" + arg
        elif len(arg) > 1 and not arg.isdigit() and "," not in arg:
            arg = rf"\mathrm{{{arg}}}"
        scripts[op].append(arg)
    if base in _GREEK:
        base = "\\" + base
    elif len(base) > 1:
        base = rf"\mathrm{{{base}}}"
    if hat:
        base = rf"\hat{{{base}}}"
    # several subscripts (a_b_c) are joined by commas: a_{b,c}
    return base + "".join(f"{op}{{{','.join(args)}}}" for op, args in scripts.items() if args)


def _math_text(text: str) -> str:
    """Text whose ASCII math tokens are typeset in math mode, the rest escaped."""
    out, pos = [], 0
    for m in _MATH_ATOM.finditer(text):
        base = re.split(r"[_^]", m.group(0))[0]
        if base not in _GREEK and len(base) > 2:  # a name such as glasso_theory: text
            continue
        out.append(_tex(text[pos:m.start()]))
        out.append(f"${_math_atom(m.group(0))}$")
        pos = m.end()
    out.append(_tex(text[pos:]))
    return "".join(out)


def _caption_tex(text: str) -> str:
    r"""A caption as LaTeX: ``||x||_2`` as a norm, ``sigma^2`` and ``r_S`` in math mode.

    >>> _caption_tex("sigma^2 = 1, r_S = 2, 50% & more")
    '$\\sigma^{2}$ = 1, $r_{S}$ = 2, 50\\% \\& more'
    >>> _caption_tex("||beta_hat - beta||_2")
    '$\\|\\hat{\\beta} - \\beta\\|_{2}$'
    """
    out, pos = [], 0
    for m in _NORM.finditer(text):
        out.append(_math_text(text[pos:m.start()]))
        inner = _MATH_ATOM.sub(lambda a: _math_atom(a.group(0)), m.group(1).strip())
        inner = re.sub(r"(?<![\\A-Za-z])([A-Za-z]{3,})(?![A-Za-z{])", r"\\mathrm{\1}", inner)
        sub = f"_{{{m.group(2)}}}" if m.group(2) else ""
        out.append(rf"$\|{inner}\|{sub}$")
        pos = m.end()
    out.append(_math_text(text[pos:]))
    return "".join(out)


def _tex_label(name: Any) -> str:
    r"""A ``\label`` key: letters, digits and ``:._-`` kept, anything else ``-`` (no escapes)."""
    return re.sub(r"[^A-Za-z0-9:._-]", "-", str(name))


def _group_text(group: str, value: Any) -> str:
    info = factor_info(group)
    if info.symbol and re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", str(value)):
        return f"${info.symbol} = {value}$"
    head = f"${info.symbol}$" if info.symbol else _tex(info.label)
    return f"{head} = {_tex(value)}"


#: Text width of a standard ``article`` (10 pt) in pt; tables are laid out to fit it.
TEXT_WIDTH_PT = 345.0
_TABCOLSEP_PT = 4.0
_SIZES = ((r"\small", 9.0), (r"\footnotesize", 8.0))


def _text_width_em(text: str) -> float:
    """Rough width of plain ``text`` in em of Computer Modern (generous, per character)."""
    w = 0.0
    for ch in str(text):
        if ch.isdigit() or ch.islower():
            w += 0.53
        elif ch.isupper():
            w += 0.75
        elif ch == " ":
            w += 0.34
        elif ch in "±×":
            w += 0.8
        elif ch in ".,:;|'":
            w += 0.3
        else:
            w += 0.55
    return w


def _tabular_width(columns, header, row_texts, headings, fs: float) -> float:
    """Estimated width (pt) of one tabular at font size ``fs``."""
    label_w = max([_text_width_em(t) + 1.0 for t in row_texts] + [0.0]) * fs
    widths = [label_w] + [
        max(_text_width_em(t) for t in col) * fs for col in columns
    ]
    total = sum(w + 2 * _TABCOLSEP_PT for w in widths)
    head_w = max([_text_width_em(h) * fs + 2 * _TABCOLSEP_PT for h in headings] + [0.0])
    return max(total, head_w)


def _latex_table(spec, group, colgroups, rowgroups, row_keys, entry, caption_full) -> str:
    r"""A ``table`` of one or more booktabs tabulars that fit :data:`TEXT_WIDTH_PT`.

    ``colgroups`` is a list of ``(group value or None, estimators)`` laid out side by
    side; ``rowgroups`` a list of group values (or ``[None]``) stacked as row blocks.
    Metric titles are heading rows above their labels (saving a column). The font is
    ``\small`` if the table fits, else ``\footnotesize``; a table still too wide is
    split into several tabulars stacked vertically, at group boundaries first.
    """
    flat = [(g, e) for g, es in colgroups for e in es]
    row_texts = [label for _, label in row_keys]
    headings = [_title(m) for m in dict.fromkeys(m for m, _ in row_keys)]
    if group:
        headings += [f"{group} = {g}" for g in rowgroups if g is not None]

    def col_texts(g, e):
        texts = [str(e)]
        for rg in rowgroups:
            texts += [entry(m, lab, g if g is not None else rg, e, False) for m, lab in row_keys]
        return texts

    def width(cols, fs):
        span = [f"{group} = {g}" for g in dict.fromkeys(g for g, _ in cols) if g is not None]
        return max(_tabular_width([col_texts(g, e) for g, e in cols], [], row_texts,
                                  headings, fs),
                   0.0, *(_text_width_em(t) * fs for t in span)) if cols else 0.0

    limit = 0.97 * TEXT_WIDTH_PT
    size, fs = _SIZES[-1]
    chunks = None
    for name, f in _SIZES:
        if width(flat, f) <= limit:
            size, fs, chunks = name, f, [flat]
            break
    if chunks is None:
        chunks, current = [], []
        for g, es in colgroups:
            cols = [(g, e) for e in es]
            if current and width(current + cols, fs) <= limit:
                current += cols
                continue
            if current:
                chunks.append(current)
            current = []
            for col in cols:
                if current and width(current + [col], fs) > limit:
                    chunks.append(current)
                    current = []
                current.append(col)
        if current:
            chunks.append(current)

    out = [r"\begin{table}[t]", r"\centering", size, rf"\setlength{{\tabcolsep}}{{{_TABCOLSEP_PT:g}pt}}"]
    for k, cols in enumerate(chunks):
        if k:
            out.append(r"\par\medskip")
        out += _tabular(group, cols, rowgroups, row_keys, entry)
    out += [rf"\caption{{{_caption_tex(caption_full)}}}",
            rf"\label{{tab:{_tex_label(spec.get('name', 'table'))}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def _tabular(group, cols, rowgroups, row_keys, entry) -> list[str]:
    ncol = 1 + len(cols)
    out = [r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule"]
    runs: list[tuple[Any, int, int]] = []  # (group value, first column, last column)
    for i, (g, _) in enumerate(cols):
        if runs and runs[-1][0] == g:
            runs[-1] = (g, runs[-1][1], i + 2)
        else:
            runs.append((g, i + 2, i + 2))
    if group and any(g is not None for g, _, _ in runs):
        out.append(" & " + " & ".join(
            rf"\multicolumn{{{b - a + 1}}}{{c}}{{{_group_text(group, g)}}}" for g, a, b in runs
        ) + r" \\")
        out.append(" ".join(rf"\cmidrule(lr){{{a}-{b}}}" for _, a, b in runs))
    out.append(" & " + " & ".join(_tex(e) for _, e in cols) + r" \\")
    for rg in rowgroups:
        out.append(r"\midrule")
        if rg is not None:
            out.append(rf"\multicolumn{{{ncol}}}{{l}}{{{_group_text(group, rg)}}} \\")
            out.append(r"\midrule")
        previous = None
        for metric, label in row_keys:
            if metric != previous:
                if previous is not None:
                    out.append(r"\addlinespace")
                out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{_tex(_title(metric))}}}}} \\")
            cells = [entry(metric, label, g if g is not None else rg, e, True) for g, e in cols]
            out.append(rf"\quad {_tex(label)} & " + " & ".join(cells) + r" \\")
            previous = metric
    out += [r"\bottomrule", r"\end{tabular}"]
    return out


def _reference_values(data: Any, refs: Sequence[Mapping[str, Any]], group: str | None
                      ) -> dict[str, dict[tuple[Any, Any], float]]:
    """``{column name: {(label, group value): mean over estimators}}`` of the references."""
    out: dict[str, dict[tuple[Any, Any], float]] = {}
    for ref in refs:
        rows = data[data["metric"] == ref["metric"]]
        keys = ["label", group] if group else ["label"]
        means = rows.groupby(keys, sort=False)["mean"].mean()
        out[ref["name"]] = {
            ((k[0], k[1]) if group else (k if not isinstance(k, tuple) else k[0], None)): float(v)
            for k, v in means.items()
        }
    return out


def _render_grouped_rows(spec, group, groups, ests, row_keys, entry, caption_full):
    """Layout with one block of rows per group value and one column per estimator."""
    head = ["metric", "label", *ests]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(ests)) + "|"]
    for g in groups:
        lines.append("| " + f"**{group} = {g}**" + " |" * (len(head) - 1) + " |")
        for metric, label in row_keys:
            cells = [_title(metric), label.replace("|", r"\|")]
            cells += [entry(metric, label, g, e, False) for e in ests]
            lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n\n" + caption_full + "\n"
    latex = _latex_table(spec, group, [(None, list(ests))], list(groups), row_keys, entry,
                         caption_full)
    return latex, markdown
