"""The ``hcl-stats`` command line.

Sub-commands are listed in workflow order. Each lives in a module of this
package (:mod:`~hcl_stats.cli.fit`, :mod:`~hcl_stats.cli.study`,
:mod:`~hcl_stats.cli.realdata`, :mod:`~hcl_stats.cli.theory`) that exposes
``register(subparsers)`` (adds its parser and sets ``func``); the handler of
command ``X`` is ``run_X`` and calls library functions. Heavy imports happen
inside the handlers, so ``hcl-stats --help`` is fast.

Exit codes (see :func:`exit_code`):

* 0 success (``check-identifiable``: every condition holds);
* 1 failures recorded (``run --strict``), a failed identifiability check, or an
  unexpected error (a bug: please report it with ``--debug``);
* 2 a usage error, or any error the package diagnoses itself, i.e. every
  :class:`~hcl_stats.exceptions.HCLError` (bad input or configuration, a store
  that is corrupted or written by other code, a solver failure) and a missing
  input file;
* 130 interrupted.

Errors are printed to stderr as one line, ``hcl-stats COMMAND: error: KIND: ...``
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..exceptions import HCLError
from . import fit, realdata, study, theory

__all__ = ["exit_code", "main"]

#: Modules providing sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = (fit, study, realdata, theory)

#: Exceptions reported with exit code 2: everything the package diagnoses itself.
_USAGE_ERRORS = (HCLError, FileNotFoundError)


def exit_code(exc: BaseException) -> int:
    """Exit code of the command line for an exception raised by a command.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    int
        2 for every :class:`~hcl_stats.exceptions.HCLError` and for
        ``FileNotFoundError``, 130 for ``KeyboardInterrupt``, 1 otherwise.

    Examples
    --------
    >>> from hcl_stats.exceptions import StoreVersionMismatch
    >>> exit_code(StoreVersionMismatch("x")), exit_code(RuntimeError("x"))
    (2, 1)
    """
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 2 if isinstance(exc, _USAGE_ERRORS) else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every sub-command registered.

    Examples
    --------
    >>> from hcl_stats.cli import build_parser
    >>> args = build_parser().parse_args(
    ...     ["check-identifiable", "--dims", "3,4", "--structure", "AB:1"])
    >>> args.command, args.dims
    ('check-identifiable', '3,4')
    """
    parser = argparse.ArgumentParser(
        prog="hcl-stats",
        description=(
            "Estimation, identifiability checks and Monte Carlo studies for "
            "hierarchical multi-view factor models."
        ),
        epilog="Run 'hcl-stats COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"hcl_stats {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks on errors"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output on stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (never calls ``sys.exit``).

    Examples
    --------
    >>> from hcl_stats.cli import main
    >>> main(["check-identifiable", "--dims", "3,4", "--structure", "AB:1 A:1"])
    ... # doctest: +ELLIPSIS
    Identifiability: identified (generic local identifiability holds)
    ...
    0
    >>> main(["check-identifiable"])  # usage error: the exit code, no SystemExit
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hcl-stats: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        code = exit_code(exc)
        kind = type(exc).__name__
        print(f"hcl-stats {args.command}: error: {kind}: {exc}", file=sys.stderr)
        return code


def entry_point() -> None:  # pragma: no cover - thin wrapper for the console script
    """Console-script entry point."""
    sys.exit(main())
