"""Peers on the same data and machine: MOFA+, AJIVE (mvlearn and hcl_stats), a cvxpy SDP.

Install the peers with ``pip install -e ".[bench]"`` (mvlearn needs
``pip install --no-deps mvlearn`` on recent scikit-learn; its runtime deps are
in the extra). Every peer that cannot be imported is reported as "not measured".
Structure recovery is scored with :func:`hcl_stats.metrics.support_scores`
(``block_f1``, ``exact``) and the Gram error with
:func:`hcl_stats.metrics.overall_gram_error` (relative).
"""

from __future__ import annotations

import statistics
import sys
import warnings

import numpy as np

import hcl_stats as hs

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import _harness  # noqa: E402
from _harness import Row, limit_threads, machine, parser, table, use_clock  # noqa: E402


def _timed(fn, runs):
    out, times = None, []
    clock = _harness.CLOCK["fn"]
    for _ in range(runs):
        t0 = clock()
        out = fn()
        times.append(clock() - t0)
    return out, times


def _scores(fit, model):
    try:
        sup = hs.metrics.support_scores(fit, model)
        f1, exact = sup["block_f1"], sup["exact"]
    except Exception:  # noqa: BLE001 - a peer without a structure
        f1 = exact = float("nan")
    try:
        err = hs.metrics.overall_gram_error(fit, model, relative=True)
    except Exception:  # noqa: BLE001
        err = float("nan")
    return f1, exact, err


def _cvxpy_sdp(cov, dims, structure, lam):
    """Generic block-PSD SDP: sum_S E_S X_S E_S^T fits S_W, trace penalty."""
    import cvxpy as cp

    off = np.concatenate([[0], np.cumsum(dims)])
    d = int(off[-1])
    s_w = cov - hs.estimators.estimate_noise_var(cov, dims, structure) * np.eye(d)
    total = 0
    penalty = 0
    for b in structure.blocks:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(b)])
        e = np.zeros((d, rows.size))
        e[rows, np.arange(rows.size)] = 1.0
        x = cp.Variable((rows.size, rows.size), PSD=True)
        total = total + e @ x @ e.T
        penalty = penalty + cp.trace(x)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(total - s_w) + lam * penalty))
    prob.solve()
    return prob.status


def run(quick: bool = False, runs: int | None = None, threads: int | None = None,
        dims=None, n=None) -> tuple[list[Row], list[list[str]]]:
    runs = runs or (1 if quick else 3)
    if quick:
        dims, n, st, sdp_dims = (8, 10, 12), 400, "ABC:1 AB:1 C:1", (4, 5, 6)
    else:
        dims, n, st, sdp_dims = dims or (50, 100, 150), n or 2000, "ABC:2 AB:2 AC:2 BC:2 A:2 B:2 C:2", (10, 12, 14)
    model = hs.HierarchicalFactorModel.random(dims, st, noise_var=1.0, rng=0)
    data = model.sample(n, rng=1)
    rows: list[Row] = []
    detail: list[list[str]] = []
    times: dict[str, list[float]] = {}
    with limit_threads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        candidates = {
            "schur (given structure)": lambda: hs.estimators.SchurComplement().fit(data, structure=st),
            "masked_gradient (given structure)": lambda: hs.estimators.MaskedGradient().fit(data, structure=st),
        }
        try:
            select = hs.estimators.get("schur_select")
            select = select() if isinstance(select, type) else select
            candidates["schur_select (learns structure)"] = lambda: select.fit(data)
        except Exception as exc:  # noqa: BLE001
            detail.append(["schur_select", "not measured", "", "", "", f"{type(exc).__name__}: {exc}"[:80]])
        try:
            import mofapy2  # noqa: F401

            candidates["MOFA+ (mofapy2, learns structure)"] = lambda: hs.estimators.MOFA(
                n_factors=model.total_rank).fit(data, rng=0)
        except ImportError:
            detail.append(["MOFA+", "not measured", "", "", "", "pip install mofapy2"])
        candidates["AJIVE (hcl_stats, learns structure)"] = lambda: hs.estimators.AJIVE().fit(data)
        try:
            from mvlearn.decomposition import AJIVE as MvAJIVE

            ranks = [model.structure.view_rank(m) for m in range(len(dims))]
            candidates["AJIVE (mvlearn, time only)"] = lambda: MvAJIVE(
                init_signal_ranks=ranks, joint_rank=model.structure.rank_of({0, 1, 2})
            ).fit(list(data.Xs))
        except ImportError:
            detail.append(["AJIVE (mvlearn)", "not measured", "", "", "", "pip install --no-deps mvlearn"])
        for name, fn in candidates.items():
            try:
                fit, ts = _timed(fn, runs)
            except Exception as exc:  # noqa: BLE001
                detail.append([name, "failed", "", "", "", f"{type(exc).__name__}: {exc}"[:80]])
                continue
            times[name] = ts
            f1, exact, err = _scores(fit, model) if isinstance(fit, hs.FitResult) else (np.nan,) * 3
            detail.append([name, f"{statistics.median(ts):.3g}", f"{f1:.2f}", f"{exact:.0f}"
                           if exact == exact else "nan", f"{err:.3f}", ""])
        for peer in ("MOFA+ (mofapy2, learns structure)", "AJIVE (hcl_stats, learns structure)",
                     "AJIVE (mvlearn, time only)"):
            for ours in ("schur (given structure)", "schur_select (learns structure)"):
                if peer in times and ours in times:
                    r = Row(f"{peer} time / {ours} time (d={sum(dims)}, n={n})",
                            ">= 50" if peer.startswith("MOFA") else "-")
                    r.num, r.den = times[peer], times[ours]
                    r.ratios = [a / b for a, b in zip(r.num, r.den, strict=True)]
                    rows.append(r)
        try:
            import cvxpy  # noqa: F401

            sdp_model = hs.HierarchicalFactorModel.random(sdp_dims, st, noise_var=1.0, rng=0)
            cov = sdp_model.sample(n, rng=1).sample_cov()
            status, ts = _timed(lambda: _cvxpy_sdp(cov, sdp_dims, sdp_model.structure, 0.05), 1)
            _, tb = _timed(lambda: hs.estimators.SchurComplement().fit_covariance(
                cov, dims=sdp_dims, structure=sdp_model.structure), 3)
            r = Row(f"generic cvxpy SDP (block-PSD fit, d={sum(sdp_dims)}) time / schur time", "-",
                    note=f"solver status {status}; one SDP solve")
            r.num, r.den = ts, [statistics.median(tb)]
            r.ratios = [ts[0] / statistics.median(tb)]
            rows.append(r)
        except ImportError:
            detail.append(["cvxpy SDP", "not measured", "", "", "", "pip install cvxpy"])
        except Exception as exc:  # noqa: BLE001
            detail.append(["cvxpy SDP", "failed", "", "", "", f"{type(exc).__name__}: {exc}"[:80]])
    return rows, detail


def main(argv: list[str] | None = None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dims", type=lambda s: tuple(int(x) for x in s.split(",")), default=None)
    p.add_argument("--n", type=int, default=None)
    args = p.parse_args(argv)
    threads = use_clock(args.clock) or args.threads
    rows, detail = run(args.quick, args.runs, threads, args.dims, args.n)
    print(machine() + f", clock {args.clock}, BLAS threads {threads or 'all'}")
    print(table(rows))
    print()
    print("| method | fit s (median) | block F1 | exact structure | rel. Gram error | note |")
    print("|---|---|---|---|---|---|")
    for d in detail:
        print("| " + " | ".join(d) + " |")
    return rows, detail


if __name__ == "__main__":
    main()
