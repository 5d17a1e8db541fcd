"""Resumable, append-only SQLite store of Monte Carlo results (one file per study).

Default location: ``simulations/_runs/<study>.sqlite`` (git-ignored), in WAL mode.

Tables
------
``meta``
    ``schema_version``, ``study``, ``seed`` and ``metrics``: a store refuses
    (:class:`~hcl_stats.exceptions.StoreVersionMismatch`) results of a study whose
    seed or metric list differ, since its rows could not be compared.
``runs``
    One row per ``hcl-stats run``: start time, config digest, package version, git
    commit and dirty flag, backend, jobs, argv and, once it ends, its wall time and
    the numbers of units computed and of failed fits.
``cells``
    ``cell_id`` -> JSON of the cell's data-generating factors and grid values.
``estimators``
    ``label`` -> registry name, hyper-parameters and their digest; a label re-used
    with other hyper-parameters raises ``StoreVersionMismatch``.
``units``
    One row per (cell, replicate, estimator): ``status`` ('ok' or 'failed'),
    ``error`` text, wall time, seed key (JSON ``[seed, *cell.key, rep]``), run id,
    config digest, package version, git commit and dirty flag.
``results``
    One row per (cell, replicate, estimator, metric, label) with its ``value``
    (NULL for NaN).

Transactions: everything produced for one (cell, replicate) is written by
:meth:`ResultStore.write_unit` in a single ``BEGIN IMMEDIATE ... COMMIT``, and
primary keys make every row unique. A process killed at any point therefore leaves
either all rows of a unit or none, and ``run`` resumes from the units that are
missing (failed units are kept and skipped unless ``--retry-failed``). Only one
process writes (the client); readers (``status``) may run concurrently.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .exceptions import StoreCorruptedError, StoreVersionMismatch

__all__ = ["ResultStore", "UnitRecord", "default_store_path", "provenance"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started_utc TEXT, config_digest TEXT,
    package_version TEXT, git_commit TEXT, git_dirty INTEGER, backend TEXT,
    jobs INTEGER, argv TEXT);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY, factors TEXT NOT NULL, varying TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS estimators (
    label TEXT PRIMARY KEY, name TEXT NOT NULL, params TEXT NOT NULL,
    spec_digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    cell_id TEXT NOT NULL, rep INTEGER NOT NULL, estimator TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), error TEXT,
    wall_time REAL, seed_key TEXT NOT NULL, run_id INTEGER, config_digest TEXT,
    package_version TEXT, git_commit TEXT, git_dirty INTEGER,
    PRIMARY KEY (cell_id, rep, estimator));
CREATE TABLE IF NOT EXISTS results (
    cell_id TEXT NOT NULL, rep INTEGER NOT NULL, estimator TEXT NOT NULL,
    metric TEXT NOT NULL, label TEXT NOT NULL, value REAL,
    PRIMARY KEY (cell_id, rep, estimator, metric, label)) WITHOUT ROWID;
"""


def default_store_path(study: Any) -> Path:
    """``<dir of the config>/_runs/<study name>.sqlite``."""
    return Path(study.path).parent / "_runs" / f"{study.name}.sqlite"


def provenance() -> dict[str, Any]:
    """Package version, git commit and dirty flag of the installed ``hcl_stats``.

    The commit is read with ``git`` from the package's directory; ``None`` when
    the package is not in a git checkout or git is unavailable.
    """
    from . import __version__

    here = Path(__file__).resolve().parent
    commit, dirty = None, None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        dirty = int(bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package_version": __version__, "git_commit": commit, "git_dirty": dirty}


@dataclass(frozen=True)
class UnitRecord:
    """Outcome of one (cell, replicate, estimator).

    Parameters
    ----------
    estimator : str
        Estimator label.
    status : {'ok', 'failed'}
    error : str or None
        ``"<ExceptionType>: <message>"`` for failures.
    wall_time : float
        Seconds for this estimator (generation time excluded).
    values : mapping of (metric, label) -> float
    """

    estimator: str
    status: str
    error: str | None
    wall_time: float
    values: Mapping[tuple[str, str], float]


class ResultStore:
    """Results of one study in an SQLite file (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The database file; its directory is created if needed.
    readonly : bool, default=False
        Open an existing store for reading only.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no result store at {self.path}; run the study first")
            uri = f"file:{self.path}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
                cols = {row[1] for row in self._conn.execute("PRAGMA table_info(runs)")}
                for col, kind in (("wall_time", "REAL"), ("units", "INTEGER"),
                                  ("failed", "INTEGER")):
                    if col not in cols:  # stores created before these columns existed
                        self._conn.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
            except sqlite3.DatabaseError as exc:
                raise StoreCorruptedError(f"{self.path} is not a result store ({exc}).") from exc

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ set-up
    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def prepare(self, study: Any) -> None:
        """Check compatibility with ``study`` and record its cells and estimators.

        Raises
        ------
        StoreVersionMismatch
            If the store holds another study, another seed or metric list, or an
            estimator label with other hyper-parameters.
        """
        want = {
            "schema_version": SCHEMA_VERSION,
            "study": study.name,
            "seed": str(study.seed),
            "metrics": json.dumps(list(study.metrics)),
        }
        have = self._meta()
        for key, value in want.items():
            if key in have and have[key] != value:
                raise StoreVersionMismatch(
                    f"{self.path}: {key} must be {have[key]!r} to append to this store; "
                    f"got {value!r}. Delete the store or give the study a new name."
                )
        stored = {
            label: digest
            for label, digest in self._conn.execute("SELECT label, spec_digest FROM estimators")
        }
        for label, spec in study.estimators.items():
            if label in stored and stored[label] != spec.digest:
                raise StoreVersionMismatch(
                    f"{self.path}: estimator {label!r} was stored with other "
                    "hyper-parameters; use a new label for the new settings or delete "
                    "the store."
                )
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for key, value in want.items():
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            for cell in study.cells:
                self._conn.execute(
                    "INSERT OR IGNORE INTO cells VALUES (?, ?, ?)",
                    (cell.id, json.dumps(dict(cell.factors), sort_keys=True),
                     json.dumps(dict(cell.varying), sort_keys=True)),
                )
            for label, spec in study.estimators.items():
                self._conn.execute(
                    "INSERT OR IGNORE INTO estimators VALUES (?, ?, ?, ?)",
                    (label, spec.name, json.dumps(dict(spec.params), sort_keys=True), spec.digest),
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def start_run(self, config_digest: str, prov: Mapping[str, Any], *, backend: str,
                  jobs: int, argv: Sequence[str]) -> int:
        """Record a run; return its id."""
        started = datetime.now(UTC).isoformat(timespec="seconds")
        cur = self._conn.execute(
            "INSERT INTO runs (started_utc, config_digest, package_version, git_commit, "
            "git_dirty, backend, jobs, argv) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (started, config_digest, prov.get("package_version"), prov.get("git_commit"),
             prov.get("git_dirty"), backend, jobs, json.dumps(list(argv))),
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, wall_time: float, units: int, failed: int) -> None:
        """Record the wall time and the numbers of units and failed fits of a run."""
        self._conn.execute(
            "UPDATE runs SET wall_time=?, units=?, failed=? WHERE run_id=?",
            (wall_time, units, failed, run_id),
        )

    # ------------------------------------------------------------ writing
    def write_unit(
        self,
        cell_id: str,
        rep: int,
        records: Iterable[UnitRecord],
        *,
        seed_key: str,
        run_id: int | None,
        config_digest: str,
        prov: Mapping[str, Any],
    ) -> None:
        """Write all records of one (cell, replicate) in one transaction.

        A failed unit of the same (cell, rep, estimator) is replaced (retry); an
        existing successful one raises ``sqlite3.IntegrityError`` and nothing is
        written.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rec in records:
                conn.execute(
                    "DELETE FROM results WHERE cell_id=? AND rep=? AND estimator=? AND "
                    "EXISTS (SELECT 1 FROM units u WHERE u.cell_id=? AND u.rep=? AND "
                    "u.estimator=? AND u.status='failed')",
                    (cell_id, rep, rec.estimator) * 2,
                )
                conn.execute(
                    "DELETE FROM units WHERE cell_id=? AND rep=? AND estimator=? AND status='failed'",
                    (cell_id, rep, rec.estimator),
                )
                conn.execute(
                    "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cell_id, rep, rec.estimator, rec.status, rec.error, rec.wall_time,
                     seed_key, run_id, config_digest, prov.get("package_version"),
                     prov.get("git_commit"), prov.get("git_dirty")),
                )
                conn.executemany(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (cell_id, rep, rec.estimator, metric, label,
                         None if (v is None or math.isnan(v)) else float(v))
                        for (metric, label), v in sorted(rec.values.items())
                    ],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ reading
    def done(self, *, include_failed: bool = True) -> set[tuple[str, int, str]]:
        """The (cell_id, rep, estimator) units already stored."""
        sql = "SELECT cell_id, rep, estimator FROM units"
        if not include_failed:
            sql += " WHERE status='ok'"
        return {(c, int(r), e) for c, r, e in self._conn.execute(sql)}

    def count(self, table: str = "results") -> int:
        """Number of rows of ``results``, ``units``, ``cells`` or ``runs``."""
        if table not in ("results", "units", "cells", "runs", "estimators"):
            raise ValueError(f"table must be a store table; got {table!r}.")
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read-only SQL query (for status and tests)."""
        return self._conn.execute(sql, params).fetchall()

    def runs(self) -> list[dict[str, Any]]:
        """All recorded runs, oldest first."""
        cur = self._conn.execute("SELECT * FROM runs ORDER BY run_id")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def frames(self) -> tuple[Any, Any, Any]:
        """``(results, units, cells)`` as pandas DataFrames (needs pandas)."""
        pd = _pandas()
        results = pd.read_sql_query(
            "SELECT cell_id, rep, estimator, metric, label, value FROM results "
            "ORDER BY cell_id, rep, estimator, metric, label", self._conn)
        units = pd.read_sql_query(
            "SELECT * FROM units ORDER BY cell_id, rep, estimator", self._conn)
        cells = pd.read_sql_query("SELECT * FROM cells ORDER BY cell_id", self._conn)
        return results, units, cells

    def tidy(self) -> Any:
        """Tidy results: one row per (cell, rep, estimator, metric, label).

        Includes the grid values (one column per factor) and the unit's status and
        provenance columns; failed units appear with empty metric columns.
        """
        pd = _pandas()
        results, units, cells = self.frames()
        varying = pd.DataFrame(
            [{"cell_id": c, **{k: _cellval(v) for k, v in json.loads(f).items()}}
             for c, f in zip(cells["cell_id"], cells["varying"], strict=True)]
        )
        out = results.merge(units, on=["cell_id", "rep", "estimator"], how="right")
        if len(varying.columns) > 1:
            out = out.merge(varying, on="cell_id", how="left")
        return out


def _cellval(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list) else v


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading a result store into tables requires pandas; install hcl_stats[study]"
        ) from exc
    return pd
