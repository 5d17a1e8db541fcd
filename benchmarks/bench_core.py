"""Core speed ratios of hcl_stats against their linear-algebra lower bounds.

Run ``python benchmarks/bench_core.py`` (paper size, d = 1400, K = 21) or
``python benchmarks/bench_core.py --quick`` (smoke mode). Prints a Markdown table
of ratios (median and min – max over ``--runs`` side-by-side repetitions).
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc

import numpy as np

import hcl_stats as hs
from hcl_stats.sampling import wishart_sample_cov
from hcl_stats.streaming import streaming_cov

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _harness import (  # noqa: E402
    Row,
    limit_threads,
    machine,
    parser,
    problem,
    side_by_side,
    table,
    use_clock,
)


def _peak(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, wall


def memory_rows(views, st, n_data) -> list[Row]:
    """Peak traced memory of a fit from data: list of views, and memory-mapped .npy."""
    schur = hs.estimators.SchurComplement()
    dims = tuple(v.shape[1] for v in views)
    size = sum(v.nbytes for v in views)
    rows = []
    peak, wall = _peak(lambda: schur.fit(views, structure=st))
    row = Row(f"peak memory of fit(views) (n={n_data}) / data size", "-",
              note=f"tracemalloc peak {peak / 2**20:.0f} MiB, data {size / 2**20:.0f} MiB, "
                   f"one run ({wall:.2f} s under tracing)")
    row.ratios, row.num, row.den = [peak / size], [peak / 2**20], [size / 2**20]
    rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/x.npy"
        np.save(path, np.hstack(views))

        def streamed():
            cov, n = streaming_cov(path)
            schur.fit_covariance(cov, dims=dims, n_samples=n, structure=st)

        peak, wall = _peak(streamed)
    row = Row(f"peak memory of streaming_cov(.npy) + fit_covariance (n={n_data}) / data size", "-",
              note=f"tracemalloc peak {peak / 2**20:.0f} MiB (memory-mapped file pages are not "
                   f"Python allocations), one run ({wall:.2f} s)")
    row.ratios, row.num, row.den = [peak / size], [peak / 2**20], [size / 2**20]
    rows.append(row)
    return rows


def run(quick: bool = False, runs: int | None = None, threads: int | None = None) -> list[Row]:
    runs = runs or 3
    model = problem(quick)
    dims, st = model.dims, model.structure
    n_cov = 500 if quick else 5000
    n_data = 2000 if quick else 30000
    rows: list[Row] = []
    schur, naive, mg = hs.estimators.SchurComplement(), hs.estimators.NaivePCA(), hs.estimators.MaskedGradient()
    with limit_threads(threads):
        cov = wishart_sample_cov(model, n_cov, rng=1)
        d = cov.shape[0]

        def fit_cov(est, c=cov, n=n_cov, **kw):
            return lambda: est.fit_covariance(c, dims=dims, n_samples=n, structure=st, **kw)

        eigh = lambda: np.linalg.eigh(cov)  # noqa: E731
        rows.append(side_by_side(
            f"closed-form fit from covariance (d={d}, K={st.total_rank}) / one numpy.linalg.eigh",
            "<= 2", fit_cov(schur), eigh, runs, note=f"SchurComplement, n={n_cov}"))
        rows.append(side_by_side(
            "naive PCA fit from covariance / one numpy.linalg.eigh", "-", fit_cov(naive), eigh, runs))

        data = model.sample(n_data, rng=2)
        views = [np.array(x) for x in data.Xs]
        x = data.stacked
        rows.append(side_by_side(
            f"full fit from data (n={n_data}) / X^T X", "<= 1.3",
            lambda: schur.fit(views, structure=st), lambda: x.T @ x, runs,
            note="SchurComplement.fit on a list of views; baseline numpy x.T @ x (float64, C order)"))

        for n in ([n_cov] if quick else [5000, 30000]):
            c = wishart_sample_cov(model, n, rng=3)
            start = schur.fit_covariance(c, dims=dims, n_samples=n, structure=st)
            probe = mg.fit_covariance(c, dims=dims, n_samples=n, structure=st, init=start)
            rows.append(side_by_side(
                f"refinement to tol=1e-7 / closed-form fit (n={n})", "<= 1",
                fit_cov(mg, c, n, init=start), fit_cov(schur, c, n), runs,
                note=f"MaskedGradient from the Schur fit, {probe.diagnostics.n_iter} iterations, "
                     f"relgrad {probe.diagnostics.relative_gradient:.1e}"))

        for n in ([n_cov] if quick else [5000, 30000]):
            rows.append(side_by_side(
                f"Wishart draw of S / data draw + sample_cov (n={n})", "-",
                lambda n=n: wishart_sample_cov(model, n, rng=4),
                lambda n=n: model.sample(n, rng=4).sample_cov(), runs))

        rows += memory_rows(views, st, n_data)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = use_clock(args.clock) or args.threads
    rows = run(args.quick, args.runs, threads)
    print(machine() + f", clock {args.clock}, BLAS threads {threads or 'all'}")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
