"""Hostile and careless input to the study harness (issue 14, section 4).

One test (or a small group) per defect class: writes outside the output directory,
process-killing allocations, mixed results, store errors, resource bombs, signals
and the documented claims. Each test fails if its defect comes back.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _study_helpers import count_units, values, write_tiny

from hcl_stats.cli import main
from hcl_stats.exceptions import (
    StoreAccessError,
    StoreCorruptedError,
    StoreVersionMismatch,
    StudyConfigError,
    ValidationError,
)
from hcl_stats.study import MAX_CELLS, MAX_CONFIG_BYTES, MAX_REPLICATIONS, load_study
from hcl_stats.study.runner import run_study
from hcl_stats.study.store import APPLICATION_ID, ResultStore

_CODE = "import sys; from hcl_stats.cli import main; sys.exit(main(sys.argv[1:]))"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ------------------------------------------------- 1. writes outside the output dir
_REPORT = """
[[report.figures]]
name = {fig!r}
x = "n_samples"
metric = "overall_gram"

[[report.tables]]
name = {tab!r}
metrics = ["overall_gram"]
group = "n_samples"
"""


@pytest.mark.parametrize("bad", ["../../x", "/tmp/hcl_escape", "a/b", ".hidden", "..", ""])
@pytest.mark.parametrize("where", ["fig", "tab"])
def test_report_names_that_leave_the_output_dir_are_refused_at_load(tmp_path, bad, where):
    names = {"fig": "ok_fig", "tab": "ok_tab", where: bad}
    cfg = write_tiny(tmp_path, extra=_REPORT.format(**names))
    section = "figures" if where == "fig" else "tables"
    with pytest.raises(StudyConfigError, match=rf"report\.{section}\[0\]\.name must be a file name"):
        load_study(cfg)
    assert main(["validate", str(cfg)]) == 2


def test_report_writes_stay_inside_out_even_past_the_loader(tmp_path):
    # a name that reaches build_report without the loader's check is refused at write time
    from hcl_stats.study.report import inside as _inside

    out = tmp_path / "out"
    out.mkdir()
    assert _inside(out, "fig", ".tex") == out / "fig.tex"
    (out / "link").symlink_to(tmp_path)  # a symlinked sub-directory cannot be a name
    for bad in ("../x", "/etc/x", "link/x"):
        with pytest.raises(StudyConfigError, match="report name must be a file name"):
            _inside(out, bad)
    (out / "escape.tex").symlink_to(tmp_path / "victim.tex")
    with pytest.raises(StudyConfigError, match="must resolve inside the output directory"):
        _inside(out, "escape", ".tex")


def test_report_run_end_to_end_writes_only_inside_out(tmp_path):
    cfg = write_tiny(tmp_path / "cfg", reps=2, ns="[60, 120]",
                     extra=_REPORT.format(fig="my.fig", tab="tab-1"))
    store = tmp_path / "s.sqlite"
    assert main(["run", str(cfg), "--jobs", "1", "--quiet", "--store", str(store)]) == 0
    before = _files(tmp_path) - _files(tmp_path / "out")
    assert main(["report", str(cfg), "--store", str(store), "--out", str(tmp_path / "out")]) == 0
    after = _files(tmp_path)
    new = {p for p in after - before if not p.name.startswith("s.sqlite")}  # store sidecars
    assert new
    assert all(tmp_path / "out" in p.parents or p == tmp_path / "out" for p in new)


@pytest.mark.parametrize("option", [
    {"write_data_filename": "/tmp/hcl_scs_dump"},
    {"log_csv_filename": "x.csv"},
    {"use_quad_obj": True},
])
def test_solver_options_outside_the_allowlist_are_refused(option):
    from hcl_stats.estimators.convex import ConvexRelaxation

    key = next(iter(option))
    with pytest.raises(ValidationError, match=rf"solver_options key must be one of .*; got '{key}'"):
        ConvexRelaxation(solver="SCS", solver_options=option)


def test_solver_options_values_must_be_numbers_and_listed_options_pass():
    from hcl_stats.estimators.convex import SOLVER_OPTIONS, ConvexRelaxation

    assert "write_data_filename" not in SOLVER_OPTIONS["SCS"]
    ConvexRelaxation(solver="SCS", solver_options={"max_iters": 50, "eps_abs": 1e-5,
                                                   "verbose": False})
    with pytest.raises(ValidationError, match=r"solver_options\['max_iters'\] must be a number"):
        ConvexRelaxation(solver="SCS", solver_options={"max_iters": "/tmp/x"})
    with pytest.raises(ValidationError, match="options allowed for MOSEK"):
        ConvexRelaxation(solver="MOSEK", solver_options={"max_iters": 5})


def test_solver_option_is_refused_in_a_study_file(tmp_path):
    extra = ('[estimators.cvx]\nname = "convex"\nsolver = "SCS"\n'
             'solver_options = {write_data_filename = "/tmp/hcl_scs_dump"}\n')
    cfg = write_tiny(tmp_path, extra=extra)
    with pytest.raises(StudyConfigError, match="write_data_filename"):
        load_study(cfg)


# ------------------------------------------------- 2. process-killing allocations
def test_convex_memory_estimate_grows_like_d4_and_refuses_naming_convex_fast():
    pytest.importorskip("cvxpy")
    import numpy as np

    from hcl_stats.estimators._convex_core import candidate_blocks
    from hcl_stats.estimators.convex import ConvexRelaxation, convex_memory_estimate

    small = convex_memory_estimate((20, 20, 20), candidate_blocks(3))
    big = convex_memory_estimate((60, 60, 60), candidate_blocks(3))
    # 24 GB was observed at d = 180 (3 views of 60): the estimate must be of that order
    assert 15e9 < big < 50e9
    ratio = (big - 1e8) / (small - 1e8)
    assert 60 < ratio < 90  # ~ (180/60)^4 = 81
    cov = np.eye(180)
    est = ConvexRelaxation(max_memory_gb=4.0)
    with pytest.raises(ValidationError, match=r"estimated 2\d\.\d GB .*'convex_fast'"):
        est.fit_covariance(cov, dims=(60, 60, 60), n_samples=1000)
    # default limit: from the available memory (this machine cannot hold 1e6 GB)
    with pytest.raises(ValidationError, match="available memory"):
        ConvexRelaxation().fit_covariance(np.eye(3000), dims=(1000, 1000, 1000),
                                          n_samples=5000)


_KILLER = '''
import os
from dataclasses import dataclass
from typing import ClassVar
from hcl_stats import estimators
from hcl_stats.estimators import SchurComplement

@dataclass(frozen=True, kw_only=True)
class _Killer(SchurComplement):
    name: ClassVar[str] = "_hostile_killer"
    def _fit(self, problem, rng):
        os._exit(9)   # what the OS's OOM killer does to the worker

if "_hostile_killer" not in estimators.available():
    estimators.register(_Killer)

class Marker:
    """Unpickling a study that holds one imports this module in every worker."""
'''


def test_a_fit_that_kills_its_worker_loses_no_sibling_rows_and_is_failed_once(tmp_path):
    mod = tmp_path / "hcl_hostile_killer.py"
    mod.write_text(_KILLER)
    sys.path.insert(0, str(tmp_path))
    old_pp = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), old_pp]))
    try:
        import hcl_hostile_killer

        cfg = write_tiny(tmp_path, reps=2, ns="[60]",
                         extra='[estimators.killer]\nname = "_hostile_killer"\n')
        study = load_study(cfg)
        study = dataclasses.replace(study, report={"_plugin": hcl_hostile_killer.Marker()})
        with ResultStore(tmp_path / "s.sqlite") as store:
            report = run_study(study, store, backend="process", jobs=2, quiet=True)
            rows = store.query("SELECT estimator, status, error FROM units")
        ok = {e for e, s, _ in rows if s == "ok"}
        failed = [(e, err) for e, s, err in rows if s == "failed"]
        assert ok == set(study.estimators) - {"killer"}
        assert len(rows) == 2 * len(study.estimators)  # every sibling row is stored
        assert [e for e, _ in failed] == ["killer", "killer"]
        assert all(err.startswith("WorkerDied:") for _, err in failed)
        assert report.failed_units == 2
        # the failure is final: a rerun does not retry it (no crash loop)
        with ResultStore(tmp_path / "s.sqlite") as store:
            again = run_study(study, store, backend="process", jobs=2, quiet=True)
        assert again.planned_units == 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hcl_hostile_killer", None)
        if old_pp is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_pp


# ------------------------------------------------- 3. mixed results
@pytest.fixture
def two_studies(tmp_path):
    a = write_tiny(tmp_path / "a", reps=2, ns="[60]", seed=1, name="alpha.toml")
    b = write_tiny(tmp_path / "b", reps=2, ns="[60]", seed=2, name="beta.toml")
    store = tmp_path / "alpha.sqlite"
    assert main(["run", str(a), "--jobs", "1", "--quiet", "--store", str(store)]) == 0
    return a, b, store


@pytest.mark.parametrize("command", ["status", "summarize", "report", "export", "validate"])
def test_commands_refuse_the_store_of_another_study(two_studies, tmp_path, command, capsys):
    _, b, store = two_studies
    argv = [command, str(b), "--store", str(store)]
    if command in ("summarize", "report"):
        argv += ["--out", str(tmp_path / "out")]
    if command == "export":
        argv += ["--out", str(tmp_path / "x.csv")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "StoreVersionMismatch" in err, err
    assert "'alpha'" in err, err
    assert not (tmp_path / "out" / "summary.csv").exists()
    with ResultStore(store, readonly=True) as st, pytest.raises(
            StoreVersionMismatch, match="study must be 'alpha'"):
        st.check_study(load_study(b))


def test_lowering_replications_summarises_only_the_configured_ones(tmp_path):
    from hcl_stats.study.summary import summarize

    cfg = write_tiny(tmp_path, reps=4, ns="[60]")
    with ResultStore(tmp_path / "s.sqlite") as store:
        run_study(load_study(cfg), store, backend="serial", quiet=True)
    cfg.write_text(cfg.read_text().replace("replications = 4", "replications = 2"))
    study = load_study(cfg)
    with ResultStore(tmp_path / "s.sqlite", readonly=True) as store:
        summary = summarize(study, store)
        expect = store.query(
            "SELECT AVG(value) FROM results WHERE estimator='naive' AND "
            "metric='overall_gram' AND label='overall' AND rep < 2")[0][0]
    row = summary[(summary.estimator == "naive") & (summary.metric == "overall_gram")
                  & (summary.label == "overall")]
    assert row["n_ok"].tolist() == [2]
    assert row["mean"].iloc[0] == pytest.approx(expect, rel=1e-12)


def test_a_foreign_sqlite_file_is_refused_and_left_byte_unchanged(tmp_path):
    cfg = write_tiny(tmp_path, reps=1, ns="[60]")
    db = tmp_path / "foreign.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO customers VALUES (1, 'x')")
    con.close()
    raw = db.read_bytes()
    with pytest.raises(StoreCorruptedError, match="another program .*customers.*left unchanged"):
        ResultStore(db)
    with pytest.raises(StoreCorruptedError, match="another program"):
        ResultStore(db, readonly=True)
    assert main(["run", str(cfg), "--jobs", "1", "--quiet", "--store", str(db)]) == 2  # every HCLError exits 2
    assert db.read_bytes() == raw
    assert not db.with_name(db.name + "-wal").exists()


def test_a_new_store_carries_the_application_id(tmp_path):
    with ResultStore(tmp_path / "s.sqlite"):
        pass
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.close()


# ------------------------------------------------- 4. store errors
@pytest.fixture
def stored(tmp_path):
    cfg = write_tiny(tmp_path, reps=1, ns="[60]")
    db = tmp_path / "s.sqlite"
    with ResultStore(db) as store:
        run_study(load_study(cfg), store, backend="serial", quiet=True)
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return cfg, db


@pytest.mark.parametrize("command", ["status", "export", "summarize", "run"])
@pytest.mark.parametrize("damage", ["directory", "empty", "garbled"])
def test_damaged_store_gives_a_typed_error_naming_the_cause(stored, tmp_path, command,
                                                           damage, capsys):
    cfg, db = stored
    target = tmp_path / "damaged.sqlite"
    if damage == "directory":
        target.mkdir()
        expect = "StoreAccessError.*got a directory"
    elif damage == "empty":
        target.write_bytes(b"")
        expect = "StoreCorruptedError.*empty file"
        if command == "run":  # an empty file is an empty SQLite database: a new store
            return
    else:
        target.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
        expect = "StoreCorruptedError"
    argv = [command, str(cfg), "--store", str(target)]
    argv += {"export": ["--out", str(tmp_path / "x.csv")],
             "summarize": ["--out", str(tmp_path / "out")],
             "run": ["--jobs", "1", "--quiet"]}.get(command, [])
    before = target.read_bytes() if target.is_file() else None
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(expect, err), err
    if before is not None:
        assert target.read_bytes() == before


def test_read_only_store_is_reported_as_read_only_not_corrupted(stored, monkeypatch):
    cfg, db = stored
    study = load_study(cfg)
    # a read-only open (mode=ro) that is asked to write: the real SQLITE_READONLY error
    with ResultStore(db, readonly=True) as store:
        with pytest.raises(StoreAccessError, match="must be writable .*read-only") as info:
            store.start_run("x", {}, backend="serial", jobs=1, argv=[])
        assert not isinstance(info.value, StoreCorruptedError)
        with pytest.raises(StoreAccessError, match="read-only"):
            store.prepare(study)


@pytest.mark.parametrize(("message", "expect"), [
    ("attempt to write a readonly database", "read-only"),
    ("database or disk is full", "full disk"),
])
def test_write_errors_name_the_true_cause_and_are_not_masked_by_rollback(
        stored, monkeypatch, message, expect):
    cfg, db = stored
    study = load_study(cfg)
    cfg2 = write_tiny(cfg.parent / "more", reps=2, ns="[60]")  # same study, one more rep
    study = load_study(cfg2)
    from hcl_stats.study import store as store_mod

    real = store_mod.ResultStore._write_unit

    def failing(self, *a, **k):
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("ROLLBACK")  # SQLite rolled back by itself (as on SQLITE_FULL)
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(store_mod.ResultStore, "_write_unit", failing)
    with ResultStore(db) as store, pytest.raises(StoreAccessError, match=expect) as info:
        run_study(study, store, backend="serial", quiet=True)
    assert "cannot rollback" not in str(info.value)
    monkeypatch.setattr(store_mod.ResultStore, "_write_unit", real)


# ------------------------------------------------- 5. resource bombs
def test_a_grid_bomb_is_refused_before_expansion(tmp_path):
    values = ", ".join(str(n) for n in range(100, 1100, 10))  # 100 values per factor
    body = write_tiny(tmp_path).read_text().replace(
        "n_samples = [50, 200]",
        f"n_samples = [{values}]\nnoise_var = [{', '.join(str(0.1 + i / 100) for i in range(100))}]\n"
        f"latent_cov = [{', '.join(str(i / 1000) for i in range(100))}]")
    body = body.replace("noise_var = 0.5\n", "", 1)
    cfg = tmp_path / "bomb.toml"
    cfg.write_text(body)
    assert cfg.stat().st_size < 8000
    start = time.perf_counter()
    with pytest.raises(StudyConfigError, match=rf"grid of at most {MAX_CELLS} cells.*1000000"):
        load_study(cfg)
    assert time.perf_counter() - start < 5


def test_replications_bomb_is_refused(tmp_path):
    cfg = write_tiny(tmp_path, reps=10**8)
    with pytest.raises(StudyConfigError, match=rf"replications must be at most {MAX_REPLICATIONS}"):
        load_study(cfg)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_validate_refuses_devices_and_huge_files(tmp_path):
    start = time.perf_counter()
    with pytest.raises(StudyConfigError, match="must be a regular file"):
        load_study("/dev/zero")
    assert time.perf_counter() - start < 5
    with pytest.raises(StudyConfigError, match="must be a regular file.*directory"):
        load_study(tmp_path)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES)
    with pytest.raises(StudyConfigError, match=f"at most {MAX_CONFIG_BYTES} bytes"):
        load_study(big)
    assert main(["validate", "/dev/zero"]) == 2


@pytest.mark.parametrize("n", ["-1", "0"])
def test_dask_local_must_be_positive(tmp_path, n, capsys):
    cfg = write_tiny(tmp_path, reps=1, ns="[60]")
    assert main(["run", str(cfg), "--dask-local", n, "--store", str(tmp_path / "s.sqlite")]) == 2
    # argparse refuses it first (range-checked type); the library refuses it too
    assert "argument --dask-local: must be an integer in 1.." in capsys.readouterr().err
    with ResultStore(tmp_path / "t.sqlite") as store, pytest.raises(ValidationError, match="dask_local"):
        run_study(load_study(cfg), store, backend="dask", dask_local=int(n))


_FAKE_SCHEDULER = """
import socket, sys, threading, time
import hcl_stats.study.runner as runner
from hcl_stats.study.runner import SchedulerError, _dask
runner.SCHEDULER_TIMEOUT = float(sys.argv[2])  # short, to keep the test fast
reply = bytes.fromhex(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(5)
conns = []
def serve():
    while True:
        c, _ = srv.accept(); conns.append(c)
        if reply:
            c.sendall(reply)
threading.Thread(target=serve, daemon=True).start()
start = time.perf_counter()
try:
    list(_dask(None, [], 1, scheduler=f"tcp://127.0.0.1:{srv.getsockname()[1]}",
               local_workers=None, processes=False))
except SchedulerError as exc:
    print("SchedulerError", time.perf_counter() - start, exc)
"""


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 200 OK\r\n\r\nhello"])
def test_scheduler_that_is_not_dask_times_out_with_a_clear_error(reply):
    # a fresh process per case: a failed Client can leave Dask's event loop busy.
    # A silent server must be given up on by the handshake deadline (distributed
    # bounds only the TCP connect); an HTTP reply is garbage to Dask's framing and
    # fails at once or at the deadline. The checks are load-independent: the error
    # and, for the silent server, that the full deadline was waited. The
    # subprocess time-out only keeps a regression (a hang) from blocking the suite.
    pytest.importorskip("dask.distributed")
    wait = 1.0
    proc = subprocess.run([sys.executable, "-c", _FAKE_SCHEDULER, reply.hex(), str(wait)],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout.startswith("SchedulerError"), proc.stdout + proc.stderr
    assert f"must be the address of a running Dask scheduler that answers within {wait:g} s" in proc.stdout
    if not reply:
        assert "TimeoutError" in proc.stdout
        assert float(proc.stdout.split()[1]) >= wait


# ------------------------------------------------- 6. signals
def _runs_started(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _children(pid: int) -> int:
    """Number of child processes of ``pid`` (Linux /proc; 2 elsewhere)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        return 2
    return len(path.read_text().split())


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("when", ["startup", "running"])
def test_ctrl_c_and_sigterm_end_with_one_line_and_resume(tmp_path, sig, code, when):
    cfg = write_tiny(tmp_path, reps=6, ns="[300, 600]")
    study = load_study(cfg)
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CODE, "run", str(cfg), "--jobs", "2", "--quiet",
         "--store", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if when == "startup" and _runs_started(db) and _children(proc.pid) >= 2:
            time.sleep(0.3)  # the spawned workers are importing numpy, scipy, hcl_stats
            break
        if when == "running" and count_units(db) >= len(study.estimators):
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the run ended before the signal could be sent")
    os.killpg(proc.pid, sig)  # as the terminal does: every process of the group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "interrupted" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    partial = count_units(db)
    # resume: nothing lost, nothing duplicated, identical values
    assert main(["run", str(cfg), "--jobs", "2", "--quiet", "--store", str(db)]) == 0
    total = len(study.cells) * study.replications * len(study.estimators)
    with ResultStore(db, readonly=True) as store:
        assert store.count("units") == total >= partial
        dup = store.query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY cell_id, rep, estimator, "
            "metric, label HAVING COUNT(*) > 1)")[0][0]
        assert dup == 0
        resumed = values(store)
    with ResultStore(tmp_path / "clean.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        assert values(store) == resumed


# ------------------------------------------------- 7. documented claims
def test_docs_state_what_concurrent_runs_and_schedulers_do():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert "two runs on one store share the work" not in readme
    assert "only connect to schedulers you trust" in readme.lower()
    from hcl_stats.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helptext = " ".join(textwrap.dedent(sub.choices["run"].format_help()).split())
    assert "only connect to schedulers you trust" in helptext.lower()


@pytest.mark.parametrize(("argv", "match"), [
    (["validate", "{cfg}", "--reps", "-5"], "argument --reps: must be an integer in 1.."),
    (["validate", "{cfg}", "--reps", "100000000"], "--reps must be an integer in 1..100000"),
    (["run", "{cfg}", "--reps", "100000000", "--store", "{db}"], "reps must be an integer in 1..100000"),
    (["replay", "{cfg}", "--cell", "0", "--rep", "-1"], "argument --rep: must be an integer in 0.."),
    (["replay", "{cfg}", "--cell", "0", "--rep", str(10**20)], "argument --rep: must be an integer in 0.."),
    (["replay", "{cfg}", "--cell", "0", "--rep", "1"], "--rep must be a replicate index in 0..0"),
])
def test_replicate_counts_and_indices_are_bounded(tmp_path, argv, match, capsys):
    cfg = write_tiny(tmp_path, reps=1, ns="[60]")
    argv = [a.format(cfg=cfg, db=tmp_path / "s.sqlite") for a in argv]
    assert main(argv) == 2
    assert match in capsys.readouterr().err
