"""Immutable fit results, diagnostics and renderable summaries."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import procrustes
from ._validation import short_repr
from .exceptions import ValidationError
from .model import LoadingsAccess, check_dense_cov
from .structure import Structure, format_block

__all__ = ["Diagnostics", "FitResult", "Summary"]


@dataclass(frozen=True)
class Diagnostics:
    """What happened during a fit.

    Parameters
    ----------
    converged : bool or None
        Whether an iterative method met its tolerance (None for closed forms).
    n_iter : int
        Iterations used (0 for closed forms).
    objective : float or None
        Final value of the objective, e.g. ``1/2 ||W W^T - S_W||_F^2``.
    relative_gradient : float or None
        Final relative gradient norm of an iterative method (see its docstring).
    wall_time_s : float
        Wall-clock time of the fit, in seconds.
    warnings : tuple of str
        Messages of all warnings raised during the fit.
    extra : mapping
        Estimator-specific values (e.g. the noise-estimation rule, an objective
        trace).
    """

    converged: bool | None = None
    n_iter: int = 0
    objective: float | None = None
    relative_gradient: float | None = None
    wall_time_s: float = 0.0
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class FitResult(LoadingsAccess):
    """Estimate of a hierarchical factor model; returned by every estimator.

    Parameters
    ----------
    loadings : ndarray of shape (d, K)
        Estimated ``W``, columns in the canonical block order of ``structure``.
        Zero outside ``structure.mask(dims)`` when ``structured`` is True.
    noise_var : float or ndarray of shape (M,)
        Estimated ``sigma^2`` or per-view ``sigma_m^2``.
    structure : Structure
        The structure used (given or estimated).
    dims : tuple of int
        ``(d_1, ..., d_M)``.
    n_samples : int or None
        Sample size ``n`` (None for a population covariance).
    estimator : str
        Repr of the estimator that produced this result.
    diagnostics : Diagnostics
    structured : bool, default=True
        False for structure-blind estimators (e.g. NaivePCA), whose columns are
        identified only up to one global ``K x K`` rotation.

    Notes
    -----
    For structured results each block ``W^S`` is identified up to its own
    ``r_S x r_S`` rotation shared by the views in ``S``; :meth:`gram` and the
    metrics are invariant to it. The result holds no reference to the data.
    """

    loadings: NDArray[np.float64]
    noise_var: float | NDArray[np.float64]
    structure: Structure
    dims: tuple[int, ...]
    n_samples: int | None
    estimator: str
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    structured: bool = True

    def __post_init__(self) -> None:
        w = np.array(self.loadings, dtype=np.float64, copy=True)
        w.setflags(write=False)
        object.__setattr__(self, "loadings", w)
        if np.ndim(self.noise_var) > 0:
            nv = np.array(self.noise_var, dtype=np.float64, copy=True)
            nv.setflags(write=False)
            object.__setattr__(self, "noise_var", nv)
        else:
            object.__setattr__(self, "noise_var", float(self.noise_var))

    # ----------------------------------------------------------------- access
    def covariance(self) -> NDArray[np.float64]:
        """Fitted covariance ``W W^T + Psi``, shape ``(d, d)``."""
        check_dense_cov(sum(self.dims), "the d x d fitted covariance")
        cov = self.loadings @ self.loadings.T
        cov[np.diag_indices_from(cov)] += self.noise_diagonal()
        return cov

    def aligned_to(self, reference: Any) -> FitResult:
        """Return a copy rotated to best match ``reference`` (an oracle step).

        Structured results are rotated block by block (one orthogonal ``Q_S`` per
        block, the identified ambiguity); structure-blind results by one global
        ``K x K`` Procrustes rotation. Only for display and loading-level metrics:
        the rotation uses the truth.

        Parameters
        ----------
        reference : FitResult or HierarchicalFactorModel
            Must have the same ``dims`` and ``structure``.

        Returns
        -------
        FitResult
        """
        if not (hasattr(reference, "loadings") and hasattr(reference, "structure")):
            raise ValidationError(
                "reference must be a FitResult or a HierarchicalFactorModel; got "
                f"{short_repr(reference)}."
            )
        ref = np.asarray(reference.loadings)
        if ref.shape != self.loadings.shape or reference.structure != self.structure:
            raise ValidationError(
                "reference must have the same dims and structure as the result; got "
                f"{reference.structure} with loadings {ref.shape}."
            )
        w = np.array(self.loadings)
        if not self.structured:
            w = w @ procrustes(w, ref)
        else:
            for b in self.structure.blocks:
                cols = self.structure.columns(b)
                w[:, cols] = w[:, cols] @ procrustes(w[:, cols], ref[:, cols])
        return replace(self, loadings=w)

    # --------------------------------------------------------------- rendering
    def summary(self) -> Summary:
        """Table of blocks with their share of each view's signal variance.

        Returns
        -------
        Summary
            Renders with ``str()``, ``to_markdown()``, ``to_latex()`` and in
            notebooks; contains no dates.
        """
        names = self.structure.names
        signal = [
            float(np.sum(self.loadings[self.row_slice(m)] ** 2))
            for m in range(self.n_views)
        ]
        rows = []
        zero_blocks, reduced = [], False
        for b, r, lev in zip(
            self.structure.blocks,
            self.structure.ranks,
            self.structure.levels(),
            strict=True,
        ):
            label = format_block(b, names)
            rank: int | str = r
            if self.structured:
                kept = int(np.sum(np.any(self.loadings[:, self.structure.columns(b)] != 0,
                                         axis=0)))
                if kept == 0:
                    zero_blocks.append(label)
                    label, rank = f"{label} (zero)", f"0 of {r}"
                elif kept < r:
                    reduced, rank = True, f"{kept} of {r}"
            shares = []
            for m in range(self.n_views):
                if m in b and signal[m] > 0:
                    shares.append(float(np.sum(self.block(m, b) ** 2)) / signal[m])
                else:
                    shares.append(None)
            rows.append([label, lev, rank, *shares])
        noise = (
            f"{self.noise_var:.6g}"
            if np.ndim(self.noise_var) == 0
            else ", ".join(f"{v:.6g}" for v in np.asarray(self.noise_var))
        )
        diag = self.diagnostics
        header = [
            ("Estimator", self.estimator),
            ("Views (d_m)", ", ".join(f"{n}={d}" for n, d in zip(names, self.dims, strict=True))),
            ("Samples n", "population" if self.n_samples is None else str(self.n_samples)),
            ("Structure", str(self.structure)),
            ("Total rank K", str(self.total_rank)),
            ("Noise variance", noise),
        ]
        if diag.converged is not None:
            header.append(("Converged", f"{diag.converged} ({diag.n_iter} iterations)"))
        if diag.objective is not None:
            # per-view noise fits run on views rescaled to unit average variance;
            # their objective is that of the rescaled problem
            label = "Objective (views rescaled)" if "view_scales" in diag.extra else "Objective"
            header.append((label, f"{diag.objective:.6g}"))
        if diag.relative_gradient is not None:
            header.append(("Relative gradient", f"{diag.relative_gradient:.3g}"))
        note = ("share v = fraction of view v's estimated signal variance "
                "tr(W_v W_v^T) carried by the block.")
        if zero_blocks:
            header.append(("Blocks estimated as zero", ", ".join(zero_blocks)))
        if zero_blocks or reduced:
            note += (" Rank 'k of r': only k of the r requested columns are non-zero "
                     "(the rest were shrunk to zero: no detectable signal).")
        columns = ["Block", "Level", "Rank", *(f"share {n}" for n in names)]
        # per-block evidence (hcl_stats.block_evidence.attach_evidence)
        evidence = diag.extra.get("block_evidence")
        sections = (evidence.to_summary(),) if hasattr(evidence, "to_summary") else ()
        return Summary(
            title="Hierarchical factor model fit",
            header=tuple(header),
            columns=tuple(columns),
            rows=tuple(tuple(r) for r in rows),
            note=note,
            sections=sections,
        )

    def to_record(self) -> dict[str, Any]:
        """Flat, JSON-safe description (no loadings), for result stores."""
        d = self.diagnostics
        return {
            "estimator": self.estimator,
            "structure": str(self.structure),
            "dims": list(self.dims),
            "n_samples": self.n_samples,
            "noise_var": (
                float(self.noise_var)
                if np.ndim(self.noise_var) == 0
                else [float(v) for v in np.asarray(self.noise_var)]
            ),
            "converged": d.converged,
            "n_iter": d.n_iter,
            "objective": d.objective,
            "relative_gradient": d.relative_gradient,
            "wall_time_s": d.wall_time_s,
            "warnings": list(d.warnings),
        }


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


@dataclass(frozen=True)
class Summary:
    """A titled key/value header plus a table; one object, several renderers.

    Rounding happens only here, at rendering time (``digits``). ``sections`` are
    further summaries rendered after this one (e.g. the block-evidence table).
    """

    title: str
    header: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    digits: int = 3
    sections: tuple[Summary, ...] = ()

    def _cells(self) -> list[list[str]]:
        return [[_fmt(v, self.digits) for v in row] for row in self.rows]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [
            max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
            for i, c in enumerate(self.columns)
        ]
        key_w = max((len(k) for k, _ in self.header), default=0)
        rule = "=" * max(sum(widths) + 2 * (len(widths) - 1), len(self.title))
        lines = [self.title, rule]
        lines += [f"{k:<{key_w}}  {v}" for k, v in self.header]
        lines.append("-" * len(rule))
        lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(self.columns, widths, strict=True))))
        for r in cells:
            lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        lines.append(rule)
        if self.note:
            lines.append(self.note)
        for sec in self.sections:
            lines += ["", str(sec)]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Render as GitHub-flavoured Markdown."""
        lines = [f"**{self.title}**", ""]
        lines += ["| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.header]
        lines += ["", "| " + " | ".join(self.columns) + " |",
                  "|" + "|".join("---" if i < 2 else "---:" for i in range(len(self.columns))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self._cells()]
        if self.note:
            lines += ["", self.note]
        for sec in self.sections:
            lines += ["", sec.to_markdown()]
        return "\n".join(lines)

    def to_latex(self) -> str:
        r"""Render as a booktabs ``tabular`` (needs ``\usepackage{booktabs}``)."""
        spec = "ll" + "r" * (len(self.columns) - 2)
        lines = [f"% {_latex_escape(self.title)}"]
        lines += [f"% {_latex_escape(k)}: {_latex_escape(v)}" for k, v in self.header]
        lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                  " & ".join(_latex_escape(c) for c in self.columns) + " \\\\", "\\midrule"]
        lines += [" & ".join(_latex_escape(c) for c in r) + " \\\\" for r in self._cells()]
        lines += ["\\bottomrule", "\\end{tabular}"]
        for sec in self.sections:
            lines += ["", sec.to_latex()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self.header
        )
        cols = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
            for r in self._cells()
        )
        return (
            f"<h4>{html.escape(self.title)}</h4><table>{head}</table>"
            f"<table><tr>{cols}</tr>{body}</table><p>{html.escape(self.note)}</p>"
            + "".join(sec._repr_html_() for sec in self.sections)
        )
