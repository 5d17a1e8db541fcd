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

import contextlib
import json
import math
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import StoreAccessError, StoreCorruptedError, StoreVersionMismatch

__all__ = ["ResultStore", "UnitRecord", "default_store_path", "provenance"]

SCHEMA_VERSION = "1"

#: ``PRAGMA application_id`` of a result store ("HCLS"): with the ``meta`` table it
#: tells a store from the SQLite file of another program, which is never written to.
APPLICATION_ID = 0x48434C53

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
    """``<dir of the config>/_runs/<study name>.sqlite``.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.store import default_store_path
    >>> default_store_path(study).as_posix()
    'simulations/_runs/quick.sqlite'
    """
    return Path(study.path).parent / "_runs" / f"{study.name}.sqlite"


def provenance() -> dict[str, Any]:
    """Package version, git commit and dirty flag of the installed ``hcl_stats``.

    The commit is read with ``git`` from the package's directory; ``None`` when
    the package is not in a git checkout or git is unavailable.

    Examples
    --------
    >>> from hcl_stats.study.store import provenance
    >>> sorted(provenance())
    ['git_commit', 'git_dirty', 'package_version']
    """
    from .. import __version__

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
        if self.path.is_dir():
            raise StoreAccessError(
                f"{self.path}: the result store must be a file; got a directory. Give "
                f"--store a file path such as {self.path / 'study.sqlite'}."
            )
        exists = self.path.exists()
        if readonly:
            if not exists:
                raise FileNotFoundError(f"no result store at {self.path}; run the study first")
            if self.path.stat().st_size == 0:
                raise StoreCorruptedError(
                    f"{self.path}: must be a result store; got an empty file. Delete it "
                    "and run the study again."
                )
            uri = f"file:{self.path}?mode=ro"
            self._conn = self._connect(uri, uri=True)
            self._check_ours()
            return
        nonempty = exists and self.path.stat().st_size > 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreAccessError(
                f"{self.path}: the store's directory must be creatable; got {exc}."
            ) from exc
        self._conn = self._connect(self.path)
        if nonempty:
            self._check_ours()  # before anything is written: a foreign file stays unchanged
        with self._guard("create the store's tables"):
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            cols = {row[1] for row in self._conn.execute("PRAGMA table_info(runs)")}
            for col, kind in (("wall_time", "REAL"), ("units", "INTEGER"),
                              ("failed", "INTEGER")):
                if col not in cols:  # stores created before these columns existed
                    self._conn.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")

    def _connect(self, target: Any, *, uri: bool = False) -> sqlite3.Connection:
        try:
            return sqlite3.connect(target, uri=uri, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise _mapped(self.path, exc, "open the store") from exc

    def _check_ours(self) -> None:
        """Refuse a file that is not a result store, without writing to it."""
        with self._guard("read the store"):
            tables = {
                row[0] for row in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")
            }
            app = self._conn.execute("PRAGMA application_id").fetchone()[0]
            legacy = "meta" in tables and bool(self._conn.execute(
                "SELECT 1 FROM meta WHERE key='schema_version'").fetchall())
        if app == APPLICATION_ID or legacy or (not tables and app == 0):
            return
        self._conn.close()
        shown = ", ".join(sorted(tables)[:6]) or "none"
        raise StoreCorruptedError(
            f"{self.path}: must be an hcl_stats result store; got the SQLite database "
            f"of another program (application_id {app}, tables: {shown}). It was left "
            "unchanged; give --store a new file."
        )

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Map sqlite3 errors (other than integrity errors) to typed errors."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise _mapped(self.path, exc, doing) from exc

    def _rollback(self) -> None:
        """Roll back if a transaction is open; never mask the error being handled.

        SQLite rolls back by itself after some errors (e.g. a full disk), and a
        second ``ROLLBACK`` would fail with "cannot rollback - no transaction is
        active" and hide the true cause.
        """
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

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

    def check_study(self, study: Any) -> None:
        """Raise unless this store may hold results of ``study`` (nothing written).

        Every command that reads a store (``status``, ``summarize``, ``report``,
        ``export``, ``validate``, ``replay``) calls it, so that the numbers of one
        study are never reported under another.

        Raises
        ------
        StoreVersionMismatch
            If the store holds another study, another seed or metric list, or an
            estimator label with other hyper-parameters.
        """
        self._want(study)

    def _want(self, study: Any) -> dict[str, str]:
        want = {
            "schema_version": SCHEMA_VERSION,
            "study": study.name,
            "seed": str(study.seed),
            "metrics": json.dumps(list(study.metrics)),
        }
        with self._guard("read the store"):
            have = self._meta()
            stored = {
                label: digest for label, digest in
                self._conn.execute("SELECT label, spec_digest FROM estimators")
            }
        for key, value in want.items():
            if key in have and have[key] != value:
                raise StoreVersionMismatch(
                    f"{self.path}: {key} must be {have[key]!r} to use this store "
                    f"(study {have.get('study')!r}, seed {have.get('seed')}); got "
                    f"{value!r} from the config. Give --store the store of this study, "
                    "delete the store, or give the study a new name."
                )
        for label, spec in study.estimators.items():
            if label in stored and stored[label] != spec.digest:
                raise StoreVersionMismatch(
                    f"{self.path}: estimator {label!r} was stored with other "
                    "hyper-parameters; use a new label for the new settings or delete "
                    "the store."
                )
        return want

    def prepare(self, study: Any) -> None:
        """Check compatibility with ``study`` and record its cells and estimators.

        Raises
        ------
        StoreVersionMismatch
            See :meth:`check_study`.
        """
        want = self._want(study)
        with self._guard("record the study"):
            self._prepare(study, want)

    def _prepare(self, study: Any, want: Mapping[str, str]) -> None:
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
            self._rollback()
            raise

    def start_run(self, config_digest: str, prov: Mapping[str, Any], *, backend: str,
                  jobs: int, argv: Sequence[str]) -> int:
        """Record a run; return its id."""
        started = datetime.now(UTC).isoformat(timespec="seconds")
        with self._guard("record the run"):
            cur = self._conn.execute(
            "INSERT INTO runs (started_utc, config_digest, package_version, git_commit, "
                "git_dirty, backend, jobs, argv) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (started, config_digest, prov.get("package_version"), prov.get("git_commit"),
                 prov.get("git_dirty"), backend, jobs, json.dumps(list(argv))),
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, wall_time: float, units: int, failed: int) -> None:
        """Record the wall time and the numbers of units and failed fits of a run."""
        with self._guard("record the end of the run"):
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
        with self._guard(f"write unit (cell {cell_id}, rep {rep})"):
            self._write_unit(cell_id, rep, records, seed_key=seed_key, run_id=run_id,
                             config_digest=config_digest, prov=prov)

    def _write_unit(self, cell_id, rep, records, *, seed_key, run_id, config_digest, prov):
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
            self._rollback()
            raise

    # ------------------------------------------------------------ reading
    def done(self, *, include_failed: bool = True) -> set[tuple[str, int, str]]:
        """The (cell_id, rep, estimator) units already stored."""
        sql = "SELECT cell_id, rep, estimator FROM units"
        if not include_failed:
            sql += " WHERE status='ok'"
        with self._guard("read the store"):
            return {(c, int(r), e) for c, r, e in self._conn.execute(sql)}

    def count(self, table: str = "results") -> int:
        """Number of rows of ``results``, ``units``, ``cells`` or ``runs``."""
        if table not in ("results", "units", "cells", "runs", "estimators"):
            raise ValueError(f"table must be a store table; got {table!r}.")
        with self._guard("read the store"):
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read-only SQL query (for status and tests)."""
        with self._guard("read the store"):
            return self._conn.execute(sql, params).fetchall()

    def runs(self) -> list[dict[str, Any]]:
        """All recorded runs, oldest first."""
        with self._guard("read the store"):
            cur = self._conn.execute("SELECT * FROM runs ORDER BY run_id")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def frames(self) -> tuple[Any, Any, Any]:
        """``(results, units, cells)`` as pandas DataFrames (needs pandas)."""
        pd = _pandas()
        try:
            return self._frames(pd)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else exc
            raise _mapped(self.path, cause, "read the store") from exc

    def _frames(self, pd: Any) -> tuple[Any, Any, Any]:
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


def _mapped(path: Path, exc: BaseException, doing: str) -> Exception:
    """A typed error naming the true cause of an sqlite3 error."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    low = text.lower()
    if name.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low:
        return StoreAccessError(
            f"{path}: the store must be writable to {doing}; got a read-only file or "
            f"file system ({text}). Give --store a writable path."
        )
    if name == "SQLITE_FULL" or "disk is full" in low:
        return StoreAccessError(
            f"{path}: the disk must have free space to {doing}; got a full disk "
            f"({text}). Free space and rerun: stored units are kept."
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in low:
        return StoreAccessError(
            f"{path}: the store must be a file that can be opened to {doing}; got "
            f"{text!r} (missing directory, a directory, or no permission)."
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in low:
        return StoreAccessError(
            f"{path}: the store must be free to {doing}; got {text!r} (another process "
            "holds a lock for too long)."
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        return StoreAccessError(f"{path}: the store must be readable and writable to "
                                f"{doing}; got an I/O error ({text}).")
    return StoreCorruptedError(
        f"{path}: must be a readable hcl_stats result store to {doing}; got {text!r} "
        "(a garbled, truncated or foreign file). It was left unchanged."
    )


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
