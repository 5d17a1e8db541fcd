"""``hcl-stats limits``: :func:`~hcl_stats.theory.limits` against Monte Carlo (reports/limits/).

A limits file (``simulations/limits.toml``) lists designs; for every design and
``n`` the report (``numbers.md``) compares, with Monte Carlo standard errors:

* the known-latent least-squares oracle's mean squared Gram error per structure
  and overall with ``oracle_floor^2`` (Proposition L1 of docs/theory.md, exact);
* ``spectral_limit^2`` (Proposition L3, a proportional-asymptotic limit) with two
  structure-blind estimators built on the sample eigenvectors ``v_i`` of a
  Wishart sample covariance: the *fixed-weight shrinker*
  ``sum_k ell_k c_k^2 v_k v_k^T`` (the limit's optimal weights, true spikes) and
  the *best equivariant* estimator ``sum_i (v_i^T G v_i) v_i v_i^T`` over all
  ``D`` eigenvectors (the per-sample oracle; no equivariant estimator does
  better on that sample), whose squared error is ``||G||^2 - sum_i (v_i^T G v_i)^2``;
  the fixed-weight shrinker is also compared with ``spectral_limit_finite_n^2``
  (the attempted finite-``n`` correction of ``limits()``, reported, not validated);
* the same at fixed ratio ``gamma = D/n`` with ``D`` and ``n`` multiplied by the
  ``[limits.scaling]`` factors (one view, the design's spikes): the distance to
  the limit shrinks as the sizes grow, which locates the disagreement in the
  finite-size terms, not in the limit.

``efficiency.md`` is built from a study summary that records ``efficiency``
(``oracle_floor / error`` per replicate, :mod:`hcl_stats.study.tasks.limits_metrics`).
Seeds: ``SeedSequence([seed, design index, n, replicate])``; the outputs are
deterministic.

File format::

    [limits]
    seed = 20261206
    efficiency_summary = "reports/paper_table/summary.csv"   # optional

    [[limits.designs]]
    name = "SMALL"
    dims = [50, 100, 150]
    structure = "all:2"
    noise_var = 1.0
    n_samples = [300, 1000, 3000]
    replications = 200
    model_seed = 1

    [limits.scaling]            # optional
    design = "SMALL"
    n_samples = [1000, 3000]
    factors = [1, 4]
    replications = 100
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ValidationError

__all__ = ["Design", "LimitsConfig", "load_limits_config", "spectral_errors",
           "write_limits_report"]


@dataclass(frozen=True)
class Design:
    """One design of a limits file."""

    name: str
    dims: tuple[int, ...]
    structure: str
    noise_var: float
    n_samples: tuple[int, ...]
    replications: int
    model_seed: int


@dataclass(frozen=True)
class LimitsConfig:
    """A parsed limits file."""

    seed: int
    designs: tuple[Design, ...]
    scaling: Mapping[str, Any] | None
    efficiency_summary: Path | None


def _fail(key: str, value: Any, rule: str) -> ValidationError:
    return ValidationError(f"{key} must be {rule}; got {value!r}.")


def _ints(key: str, value: Any, low: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value
    ):
        raise _fail(key, value, f"a non-empty list of integers >= {low}")
    return tuple(value)


def _int(key: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _fail(key, value, f"an integer >= {low}")
    return value


def load_limits_config(path: str | Path) -> LimitsConfig:
    """Parse a limits file (see the module docstring); typed errors name the key."""
    path = Path(path)
    raw = tomllib.loads(path.read_text()).get("limits")
    if not isinstance(raw, Mapping):
        raise _fail("limits", raw, "a [limits] table")
    designs = []
    for i, d in enumerate(raw.get("designs", [])):
        key = f"limits.designs[{i}]"
        if not isinstance(d.get("name"), str) or not isinstance(d.get("structure"), str):
            raise _fail(f"{key}.name/structure", (d.get("name"), d.get("structure")), "strings")
        nv = d.get("noise_var", 1.0)
        if not isinstance(nv, (int, float)) or isinstance(nv, bool) or nv <= 0:
            raise _fail(f"{key}.noise_var", nv, "a positive number (isotropic noise)")
        designs.append(Design(
            d["name"], _ints(f"{key}.dims", d.get("dims"), 1), d["structure"], float(nv),
            _ints(f"{key}.n_samples", d.get("n_samples"), 2),
            _int(f"{key}.replications", d.get("replications"), 2),
            _int(f"{key}.model_seed", d.get("model_seed", 0), 0)))
    if not designs:
        raise _fail("limits.designs", raw.get("designs"), "a non-empty array of designs")
    scaling = raw.get("scaling")
    if scaling is not None:
        names = [d.name for d in designs]
        if scaling.get("design") not in names:
            raise _fail("limits.scaling.design", scaling.get("design"), f"one of {names}")
        _ints("limits.scaling.n_samples", scaling.get("n_samples"), 2)
        _ints("limits.scaling.factors", scaling.get("factors"), 1)
        _int("limits.scaling.replications", scaling.get("replications"), 2)
    eff = raw.get("efficiency_summary")
    return LimitsConfig(_int("limits.seed", raw.get("seed", 0), 0), tuple(designs), scaling,
                        Path(eff) if eff else None)


# ------------------------------------------------------------------ Monte Carlo
def _row_factor(model: Any, row: Any, w: np.ndarray) -> np.ndarray:
    cols = np.unique(np.concatenate(row.columns))
    parts = []
    for m, c in zip(row.views, row.columns, strict=True):
        blk = np.zeros((model.dims[m], cols.size))
        blk[:, np.searchsorted(cols, c)] = w[model.row_slice(m)][:, c]
        parts.append(blk)
    return np.vstack(parts)


def _gram_sq(fe: np.ndarray, ft: np.ndarray) -> float:
    _, r = np.linalg.qr(np.hstack([fe, ft]))
    a, b = r[:, : fe.shape[1]], r[:, fe.shape[1]:]
    return float(np.linalg.norm(a @ a.T - b @ b.T) ** 2)


def _oracle_errors(model: Any, n: int, gen: Any, rows: list) -> list[float]:
    """Squared Gram errors of the known-latent least-squares oracle, per row."""
    w = np.asarray(model.loadings)
    z = gen.standard_normal((n, w.shape[1]))
    x = z @ w.T + gen.standard_normal((n, w.shape[0])) * np.sqrt(model.noise_diagonal())
    w_hat = np.linalg.solve(z.T @ z, z.T @ x).T * model.structure.mask(model.dims)
    return [_gram_sq(_row_factor(model, r, w_hat), _row_factor(model, r, w)) for r in rows]


def spectral_errors(model: Any, n: int, gen: Any) -> tuple[float, float]:
    """Squared overall errors ``(fixed-weight shrinker, best equivariant)`` on one sample.

    The fixed-weight shrinker puts the weights ``ell_k c_k^2`` of Proposition L3
    (``gamma = D / n``, true spikes) on the top ``K`` sample eigenvectors; the best
    equivariant estimator puts ``v_i^T G v_i`` on every sample eigenvector, with
    squared error ``||G||_F^2 - sum_i (v_i^T G v_i)^2`` (``G = W W^T``).
    """
    from .._rmt import spike_cosine_sq
    from ..sampling import wishart_sample_cov

    w = np.asarray(model.loadings)
    d, k = w.shape
    s2 = float(np.max(model.noise_diagonal()))
    ell = np.linalg.svd(w, compute_uv=False) ** 2
    g2 = float(np.sum(ell**2))
    eta = ell * spike_cosine_sq(ell, s2, d / n)
    _, vecs = np.linalg.eigh(wishart_sample_cov(model, n, gen))
    vecs = vecs[:, ::-1]
    proj = vecs.T @ w                      # (D, K): v_i^T W
    best = g2 - float(np.sum(np.sum(proj**2, axis=1) ** 2))
    top = proj[:k]
    fixed = float(np.sum(eta**2) + g2 - 2.0 * np.sum(eta * np.sum(top**2, axis=1)))
    # sum_i eta_i ||W^T v_i||^2 is the cross term <G_hat, G>
    return fixed, best


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


def _model(design: Design) -> Any:
    from ..model import HierarchicalFactorModel

    return HierarchicalFactorModel.random(design.dims, design.structure,
                                          noise_var=design.noise_var, rng=design.model_seed)


def _spiked(ell: np.ndarray, d: int, s2: float) -> Any:
    from ..model import HierarchicalFactorModel
    from ..structure import Structure

    k = ell.size
    w = np.zeros((d, k))
    w[np.arange(k), np.arange(k)] = np.sqrt(ell)
    return HierarchicalFactorModel((d,), Structure.parse(f"A:{k}", n_modalities=1), w, s2)


def _design_section(cfg: LimitsConfig, di: int, design: Design) -> tuple[list[str], list[str]]:
    from . import limits
    from .limits import row_specs

    model = _model(design)
    rows = [r for r in row_specs(model) if r.kind != "view_block"]
    out: list[str] = []
    spec_lines: list[str] = []
    for n in design.n_samples:
        tab = limits(model, n)
        tab = tab[tab["kind"] != "view_block"].reset_index(drop=True)
        errs, fixed, best = [], [], []
        for rep in range(design.replications):
            gen = np.random.default_rng(np.random.SeedSequence([cfg.seed, di, n, rep]))
            errs.append(_oracle_errors(model, n, gen, rows))
            f, b = spectral_errors(model, n, gen)
            fixed.append(f)
            best.append(b)
        e = np.asarray(errs)
        out += [f"### {design.name}: d = {design.dims}, {design.structure}, sigma^2 = "
                f"{design.noise_var:g}, n = {n}, {design.replications} replications", "",
                "| row | zero_error | oracle_crb | oracle_floor | floor^2 | MC MSE ± MCSE | z "
                "| detectable (global / restricted) |", "|---|---|---|---|---|---|---|---|"]
        for j, r in tab.iterrows():
            mc, se = _mean_se(list(e[:, j]))
            th = r["oracle_floor"] ** 2
            out.append(f"| {r['block']} | {r['zero_error']:.4g} | {r['oracle_crb']:.4g} | "
                       f"{r['oracle_floor']:.4g} | {th:.4g} | {mc:.4g} ± {se:.2g} | "
                       f"{(mc - th) / se:+.2f} | {r['detectable_global']} / "
                       f"{r['detectable_restricted']} |")
        out.append("")
        lim = float(tab.iloc[-1]["spectral_limit"]) ** 2
        cells = [f"{design.name} | {design.dims} | {n} | {sum(design.dims) / n:.3g} | {lim:.4g}"]
        for vals in (fixed, best):
            mc, se = _mean_se(vals)
            cells.append(f"{mc:.4g} ± {se:.2g} ({100 * (mc / lim - 1):+.2f}%, "
                         f"z = {(mc - lim) / se:+.1f})")
        # the attempted finite-n correction, against the fixed-weight shrinker
        lim_n = float(tab.iloc[-1]["spectral_limit_finite_n"]) ** 2
        mc, se = _mean_se(fixed)
        cells.append(f"{lim_n:.4g} ({100 * (mc / lim_n - 1):+.2f}%, "
                     f"z = {(mc - lim_n) / se:+.1f})")
        spec_lines.append("| " + " | ".join(cells) + " |")
    return out, spec_lines


def _scaling_section(cfg: LimitsConfig) -> list[str]:
    from ..theory.limits import spectral_limit_terms

    sc = cfg.scaling
    di, design = next((i, d) for i, d in enumerate(cfg.designs) if d.name == sc["design"])
    model = _model(design)
    ell = np.linalg.svd(np.asarray(model.loadings), compute_uv=False) ** 2
    d0 = sum(design.dims)
    out = []
    for n0 in sc["n_samples"]:
        for f in sc["factors"]:
            d, n = d0 * f, n0 * f
            spiked = _spiked(ell, d, design.noise_var)
            lim = float(np.sum(spectral_limit_terms(ell, design.noise_var, d / n)[1]))
            fixed, best = [], []
            for rep in range(int(sc["replications"])):
                gen = np.random.default_rng(
                    np.random.SeedSequence([cfg.seed, 1000 + di, n, f, rep]))
                a, b = spectral_errors(spiked, n, gen)
                fixed.append(a)
                best.append(b)
            cells = [f"{d} | {n} | {d / n:.3g} | {lim:.4g}"]
            for vals in (fixed, best):
                mc, se = _mean_se(vals)
                cells.append(f"{mc:.4g} ± {se:.2g} ({100 * (mc / lim - 1):+.2f}%, "
                             f"z = {(mc - lim) / se:+.1f})")
            out.append("| " + " | ".join(cells) + " |")
    return out


_SPECTRAL_HEAD = ("| MC MSE of the fixed-weight shrinker (vs limit) "
                  "| MC MSE of the best equivariant estimator (vs limit) |")


def numbers_markdown(cfg: LimitsConfig, config_name: str) -> str:
    """The text of ``numbers.md``."""
    out = ["# limits() against Monte Carlo", "",
           f"Generated by `hcl-stats limits {config_name}`; do not edit. MSE = mean "
           "squared Frobenius error over replications, MCSE its standard error, "
           "z = (MC - theory) / MCSE. One model per design "
           "(`HierarchicalFactorModel.random(..., rng=model_seed)`).", "",
           "## Known-latent oracle floor (Proposition L1, exact at every n)", ""]
    spectral: list[str] = []
    for di, design in enumerate(cfg.designs):
        sec, spec = _design_section(cfg, di, design)
        out += sec
        spectral += spec
    out += ["## Structure-blind spectral limit (Proposition L3, proportional limit)", "",
            "| design | d | n | D/n | spectral_limit^2 " + _SPECTRAL_HEAD
            + " spectral_limit_finite_n^2 (fixed-weight shrinker vs it; not validated) |",
            "|---|---|---|---|---|---|---|---|", *spectral, ""]
    if cfg.scaling:
        sc = cfg.scaling
        out += [f"### Same spikes, same D/n, sizes multiplied by {sc['factors']} "
                f"({sc['design']} spikes, one view, {sc['replications']} replications)", "",
                "| D | n | D/n | spectral_limit^2 " + _SPECTRAL_HEAD,
                "|---|---|---|---|---|---|", *_scaling_section(cfg), ""]
    return "\n".join(out) + "\n"


def efficiency_markdown(summary_path: Path, config_name: str) -> str:
    """The text of ``efficiency.md`` from a study summary recording ``efficiency``."""
    import pandas as pd

    summ = pd.read_csv(summary_path, dtype={"label": str}, float_precision="round_trip")
    eff = summ[summ["metric"] == "efficiency"]
    floor = summ[summ["metric"] == "oracle_floor"]
    err = summ[summ["metric"].isin(["structure_gram", "overall_gram"])]
    if eff.empty:
        raise ValidationError(f"{summary_path} records no 'efficiency' metric; add it to the "
                              "study's metrics and rerun the study.")
    ests = list(dict.fromkeys(eff["estimator"]))
    labels = list(dict.fromkeys(eff["label"]))
    out = ["# Efficiency (oracle floor / error)", "",
           f"Generated by `hcl-stats limits {config_name}` from the committed "
           f"`{summary_path.as_posix()}`; do not edit. Cells: mean efficiency ± MC s.e. "
           "over replications (per replicate: that model's `oracle_floor` / its "
           "data-only error), then the mean error. Above 1: better than the "
           "known-latent least-squares oracle, which happens only where that oracle "
           "is worse than estimating zero (`oracle_floor > zero_error`).", ""]
    for n in sorted(set(eff["n_samples"])):
        out += [f"## n = {n}", "", "| row | oracle floor | " + " | ".join(ests) + " |",
                "|---|---|" + "---|" * len(ests)]
        for lab in labels:
            f = floor[(floor["n_samples"] == n) & (floor["label"] == lab)]["mean"]
            cells = []
            for e in ests:
                r = eff[(eff["n_samples"] == n) & (eff["label"] == lab) & (eff["estimator"] == e)]
                q = err[(err["n_samples"] == n) & (err["label"] == lab) & (err["estimator"] == e)]
                if r.empty:
                    cells.append("-")
                    continue
                text = f"{r['mean'].iloc[0]:.2f} ± {r['mcse'].iloc[0]:.2f}"
                cells.append(text + (f" ({q['mean'].iloc[0]:.3g})" if not q.empty else ""))
            fl = f"{f.mean():.3g}" if len(f) else "-"
            out.append(f"| {lab} | {fl} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def write_limits_report(config: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``numbers.md`` (and ``efficiency.md`` if configured) to ``out_dir``."""
    config = Path(config)
    cfg = load_limits_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if cfg.efficiency_summary is not None:
        text = efficiency_markdown(cfg.efficiency_summary, config.as_posix())
        (out_dir / "efficiency.md").write_text(text)
        paths.append(out_dir / "efficiency.md")
    (out_dir / "numbers.md").write_text(numbers_markdown(cfg, config.as_posix()))
    paths.append(out_dir / "numbers.md")
    return paths
