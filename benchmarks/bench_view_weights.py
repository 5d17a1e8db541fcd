"""Accuracy of per-view shrinkage: ``MaskedShrink(view_weights=True)`` (the default) against ``False``.

Not a timing: for each design the rows give the ratio of the mean oracle relative
Gram error (it uses the simulation's truth) with per-view weights to the one
without, over replications drawn with the exact Wishart sampler (median and
min - max of the per-replication ratios; "wins" counts the replications where the
per-view weights are more accurate). Designs (docs/shrinkage.md §5.6):

* the validation grid of §5.5: d = (40, 120, 200), structure
  ``ABC:2 AB:1 AC:2 A:1 B:3 C:2``, sigma^2 in {1, 4}, n in {300, 1000, 3000, 10000};
* views of equal size and signal: d = (200, 200, 200), ``all:2``, n = 40;
* the paper design (d = (100, 500, 800), all 7 blocks of rank 3, sigma^2 = 6) at
  n = 5000, 10000, 30000 (``--no-paper`` skips it: about 4 s per fit).

``--reps R`` sets the replications per cell (default 8; 4 for the paper design).
The wide-data comparison with MOFA+ is ``bench_wide.py --accuracy-seeds``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

import hcl_stats as hs
from hcl_stats.sampling import wishart_sample_cov

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _harness import (  # noqa: E402
    PAPER_DIMS,
    PAPER_NOISE,
    PAPER_STRUCTURE,
    Row,
    machine,
    parser,
    table,  # noqa: E402
)


def _cell(dims, structure, noise, n, reps, sv=None) -> Row:
    errs = {False: [], True: []}
    for rep in range(reps):
        kw = {"noise_var": noise, "rng": 1000 + rep}
        if sv is not None:
            kw["singular_values"] = sv
        model = hs.HierarchicalFactorModel.random(dims, structure, **kw)
        s = wishart_sample_cov(model, n, rng=rep)
        for vw in errs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = hs.estimators.MaskedShrink(view_weights=vw).fit_covariance(
                    s, dims=model.dims, structure=model.structure, n_samples=n)
            errs[vw].append(hs.metrics.overall_gram_error(fit, model, relative=True))
    on, off = np.array(errs[True]), np.array(errs[False])
    row = Row(f"d={tuple(dims)}, {structure}, sigma^2={noise:g}, n={n}: view weights / "
              "one weight per component", "< 1",
              note=f"mean error {on.mean():.4f} vs {off.mean():.4f}; wins "
                   f"{int(np.sum(on < off))}/{reps}")
    row.num, row.den = list(on), list(off)
    row.ratios = list(on / off)
    print(f"  {row.name}: {row.note}", file=sys.stderr, flush=True)
    return row


def run(reps: int = 8, paper: bool = True, quick: bool = False) -> list[Row]:
    rows = []
    validation = ((40, 120, 200), "ABC:2 AB:1 AC:2 A:1 B:3 C:2")
    if quick:
        return [_cell(*validation, 1.0, 300, 2)]
    for noise in (1.0, 4.0):
        for n in (300, 1000, 3000, 10000):
            rows.append(_cell(*validation, noise, n, reps))
    rows.append(_cell((200, 200, 200), "all:2", 1.0, 40, reps, sv=(3.0, 5.0)))
    if paper:
        for n in (5000, 10000, 30000):
            rows.append(_cell(PAPER_DIMS, PAPER_STRUCTURE, PAPER_NOISE, n, max(reps // 2, 1)))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=8, help="replications per cell")
    p.add_argument("--no-paper", action="store_true", help="skip the paper design")
    args = p.parse_args(argv)
    rows = run(args.reps, paper=not args.no_paper, quick=args.quick)
    print(machine() + " (oracle accuracy: errors against the simulation's truth; not time)")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
