"""Run every benchmark and print one Markdown report (``--quick`` for a smoke run).

    python benchmarks/run_all.py            # full sizes (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick    # seconds; what CI runs
"""

from __future__ import annotations

import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import bench_core  # noqa: E402
import bench_montecarlo  # noqa: E402
import bench_peers  # noqa: E402
from _harness import machine, parser, table  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--skip", action="append", default=[], choices=["core", "montecarlo", "peers"])
    args = p.parse_args(argv)
    print(machine())
    if "core" not in args.skip:
        print("\n### Core ratios\n")
        print(table(bench_core.run(args.quick, args.runs, args.threads)))
    if "montecarlo" not in args.skip:
        print("\n### Monte Carlo throughput\n")
        print(table(bench_montecarlo.run(args.quick)))
    if "peers" not in args.skip:
        rows, detail = bench_peers.run(args.quick, args.runs, args.threads)
        print("\n### Peers\n")
        print(table(rows))
        print("\n| method | fit s (median) | block F1 | exact structure | rel. Gram error | note |")
        print("|---|---|---|---|---|---|")
        for d in detail:
            print("| " + " | ".join(d) + " |")


if __name__ == "__main__":
    main()
