"""Hostile and careless input at the library and CLI-argument boundary (issue 14, §4).

Each test guards one class of defect: untyped errors (IndexError, TypeError,
AttributeError, OverflowError, a raw MemoryError, a peer's ValueError) where a
typed :mod:`hcl_stats.exceptions` error naming the argument and the rule belongs,
values accepted silently (negative counts), the CLI's exit codes, and CSV reading
(byte-order marks, numeric headers).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import re
import warnings

import numpy as np
import pytest
from _study_helpers import write_tiny

import hcl_stats as hs
from hcl_stats import _validation, exceptions, theory
from hcl_stats._validation import cli_float, cli_int, non_negative_int, positive_int
from hcl_stats.cli import build_parser, exit_code, main
from hcl_stats.cli import fit as _cli_fit
from hcl_stats.estimators import (
    AJIVE,
    GCCA,
    MOFA,
    SLIDE,
    MaskedGradient,
    SchurComplement,
)
from hcl_stats.exceptions import HCLError, StoreVersionMismatch, ValidationError
from hcl_stats.results import FitResult


# ------------------------------------------------------------------ CLI numbers
def _int_and_float_actions():
    """(sub-command, option, action) for every option of every sub-command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings:
                yield name, action.option_strings[-1], action


def test_no_cli_option_uses_an_unchecked_int_or_float_type():
    raw = [(c, o) for c, o, a in _int_and_float_actions() if a.type in (int, float)]
    assert raw == [], f"options without a range-checked type: {raw}"


BAD_NUMBERS = [
    (["replay", "x.toml", "--cell", "c", "--rep", "-1"], "--rep", r"0\.\.2147483647; got -1"),
    (["replay", "x.toml", "--cell", "c", "--rep", str(10**20)], "--rep",
     r"got 100000000000000000000"),
    (["replay", "x.toml", "--cell", "c", "--rep", "10**20"], "--rep", r"got '10\*\*20'"),
    (["validate", "x.toml", "--reps", "-5"], "--reps", r"1\.\.2147483647; got -5"),
    (["validate", "x.toml", "--reps", "0"], "--reps", r"got 0"),
    (["run", "x.toml", "--reps", "0"], "--reps", r"got 0"),
    (["run", "x.toml", "--jobs", "0"], "--jobs/-j", r"got 0"),
    (["run", "x.toml", "--dask-local", "-1"], "--dask-local", r"got -1"),
    (["run", "x.toml", "--blas-threads", "-2"], "--blas-threads", r"0\.\.2147483647; got -2"),
    (["run", "x.toml", "--timeout", "0"], "--timeout", r"finite number > 0; got '0'"),
    (["run", "x.toml", "--timeout", "nan"], "--timeout", r"got 'nan'"),
    (["run", "x.toml", "--timeout", "inf"], "--timeout", r"got 'inf'"),
    (["status", "x.toml", "--failures", "-1"], "--failures", r"got -1"),
    (["real-data-report", "--n-boot", "0"], "--n-boot", r"got 0"),
    (["real-data-report", "--folds", "1"], "--folds", r"2\.\.2147483647; got 1"),
    (["real-data-report", "--seed", "-3"], "--seed", r"got -3"),
]


@pytest.mark.parametrize(("argv", "option", "pattern"), BAD_NUMBERS,
                         ids=[" ".join(c[0][:1] + c[0][-2:]) for c in BAD_NUMBERS])
def test_out_of_range_numbers_are_usage_errors(capsys, argv, option, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(rf"argument {option}: must be .*{pattern}", err), err
    assert "Traceback" not in err


def test_in_range_numbers_parse():
    args = build_parser().parse_args(["replay", "x.toml", "--cell", "c", "--rep", "0"])
    assert args.rep == 0
    args = build_parser().parse_args(["run", "x.toml", "--blas-threads", "0", "--timeout", "2.5"])
    assert (args.blas_threads, args.timeout) == (0, 2.5)


def test_cli_number_types_raise_argument_type_errors():
    with pytest.raises(argparse.ArgumentTypeError, match=r"integer in 0\.\.2147483647; got -1"):
        non_negative_int("-1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"integer in 1\.\.2147483647; got 'x'"):
        positive_int("x")
    with pytest.raises(argparse.ArgumentTypeError, match=r"in 2\.\.5; got 6"):
        cli_int(2, 5)("6")
    with pytest.raises(argparse.ArgumentTypeError, match=r"finite number >= 0 and <= 1; got '2'"):
        cli_float(0.0, 1.0)("2")
    assert cli_int(2, 5)(" 5 ") == 5


# ------------------------------------------------------------- block arguments
S = "AB:1 A:1 B:1"


@pytest.fixture
def model():
    return hs.HierarchicalFactorModel.random((3, 4), S, noise_var=0.5, rng=0)


@pytest.fixture
def fit(model):
    return SchurComplement().fit_covariance(model.covariance(), dims=(3, 4), structure=S)


@pytest.mark.parametrize("which", ["model", "fit"])
@pytest.mark.parametrize(("block", "pattern"), [
    ({5}, r"block must contain view indices in 0\.\.1 .*got \{5\}, which contains 5"),
    ("ZZ", r"block must be one of the structure's blocks .*got 'ZZ', which is not made "
           r"of the view letters A-B"),
    ("", r"got '', which is not made of the view letters"),
    ({True}, r"contains True"),
    ({0.0}, r"contains 0\.0"),
    (3, r"block must be a non-empty block .*got 3"),
    (set(), r"block must be a non-empty block .*got set\(\)"),
    (None, r"got None"),
])
def test_gram_rejects_bad_blocks_and_lists_the_blocks(request, which, block, pattern):
    obj = request.getfixturevalue(which)
    with pytest.raises(ValidationError, match=pattern) as info:
        obj.gram(block)
    assert "the structure's blocks are AB, A, B" in str(info.value)


def test_block_not_in_structure_is_named(fit):
    other = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    with pytest.raises(ValidationError, match=r"got B = \{1\}, which is not in structure AB:1 A:1"):
        other.gram({1})
    with pytest.raises(ValidationError, match=r"blocks are AB, A\); got B = \{1\}, which is "
                       r"not in structure AB:1 A:1\.$"):
        other.block(1, "B")


@pytest.mark.parametrize("which", ["model", "fit"])
def test_block_accepts_text_sets_and_structure_blocks(request, which):
    obj = request.getfixturevalue(which)
    ab = obj.structure.blocks[0]
    g = obj.gram(ab)
    for same in ("AB", "BA", {0, 1}, [1, 0], (0, 1), np.array([0, 1])):
        np.testing.assert_array_equal(obj.gram(same), g)
    assert g.shape == (7, 7)
    np.testing.assert_array_equal(obj.block(1, "A"), np.zeros((4, 1)))
    np.testing.assert_array_equal(obj.block(0, "AB"), obj.block(0, {0, 1}))
    np.testing.assert_array_equal(obj.view_rows("B"), np.arange(3, 7))


def test_named_views_accept_the_named_block_text():
    s = hs.Structure.parse(S, view_names=["text", "image"])
    m = hs.HierarchicalFactorModel.random((3, 4), s, rng=0)
    np.testing.assert_array_equal(m.gram("{text,image}"), m.gram("AB"))


@pytest.mark.parametrize(("call", "pattern"), [
    (lambda o: o.block(7, "AB"), r"m must be a view index in 0\.\.1 \(there are 2 views\); got 7"),
    (lambda o: o.block(-1, "AB"), r"m must be a view index in 0\.\.1 .*got -1"),
    (lambda o: o.block("A", "AB"), r"m must be a view index \(an integer in 0\.\.1\); got 'A'"),
    (lambda o: o.block(0, "ZZ"), r"block must be one of the structure's blocks"),
    (lambda o: o.row_slice(2), r"m must be a view index in 0\.\.1 .*got 2"),
    (lambda o: o.view_rows({9}), r"block must contain view indices in 0\.\.1 .*contains 9"),
])
def test_view_and_block_accessors_reject_bad_views(fit, call, pattern):
    with pytest.raises(ValidationError, match=pattern):
        call(fit)


@pytest.mark.parametrize(("block", "pattern"), [
    ("ZZ", r"block must be a set of view indices such as \{0, 1\}; got 'ZZ'"),
    (5, r"got 5\."),
    ({True}, r"got \{True\}"),
    ({5}, r"block F is not in structure AB:1 A:1 B:1"),
])
@pytest.mark.parametrize("method", ["index", "columns", "rank_of"])
def test_structure_block_lookups_are_typed(method, block, pattern):
    s = hs.Structure.parse(S)
    with pytest.raises(ValidationError, match=pattern):
        getattr(s, method)(block)
    assert s.rank_of({0, 1}) == 1
    assert s.index(frozenset({1})) == 2


def test_aligned_to_rejects_a_non_model_reference(fit):
    with pytest.raises(ValidationError, match=r"reference must be a FitResult or a "
                       r"HierarchicalFactorModel; got 'truth'"):
        fit.aligned_to("truth")


# ----------------------------------------------------------------- theory.py
@pytest.mark.parametrize(("bad", "pattern"), [
    ("model", r"model must be a HierarchicalFactorModel or a FitResult .*got 'model', it "
              r"has no dims, structure, loadings, covariance, noise_diagonal"),
    (None, r"got None, it has no dims"),
    (np.eye(3), r"got array\(.*it has no dims"),
])
def test_population_quantities_rejects_non_models(bad, pattern):
    with pytest.raises(ValidationError, match=pattern):
        theory.population_quantities(bad)


def test_population_quantities_rejects_inconsistent_duck_models(model):
    class Fake:
        dims = (3, 4)
        structure = model.structure
        loadings = np.zeros((5, 3))

        def covariance(self):
            return np.eye(7)

        def noise_diagonal(self):
            return np.ones(7)

    with pytest.raises(ValidationError, match=r"model\.loadings must have shape \(d, K\) = "
                       r"\(7, 3\); got \(5, 3\)"):
        theory.population_quantities(Fake())

    class NoStructure(Fake):
        structure = "AB:1 A:1 B:1"

    with pytest.raises(ValidationError, match=r"its structure is not a Structure"):
        theory.population_quantities(NoStructure())


def test_population_quantities_accepts_models_and_fits(model, fit):
    assert theory.population_quantities(model).total_rank == 3
    assert theory.population_quantities(fit).d == 7


@pytest.mark.parametrize("bound", [theory.subspace_bound, theory.loading_bound])
def test_bounds_reject_a_model_in_place_of_its_quantities(model, bound):
    with pytest.raises(ValidationError, match=r"q must be a PopulationQuantities .*Pass "
                       r"population_quantities\(model\) instead of the model\."):
        bound(model, 100)
    with pytest.raises(ValidationError, match=r"q must be a PopulationQuantities .*got 'q'\.$"):
        bound("q", 100)


@pytest.mark.parametrize(("block", "pattern"), [
    (5, r"block must be one of the model's blocks \(AB, A, B\).*got 5"),
    ("ZZ", r"got 'ZZ'"),
    ({0, 7}, r"got \{0, 7\}"),
    ({"A"}, r"got \{'A'\}"),
])
def test_block_loading_bound_rejects_bad_blocks(model, block, pattern):
    q = theory.population_quantities(model)
    with pytest.raises(ValidationError, match=pattern):
        theory.block_loading_bound(q, 100, block)


def test_block_loading_bound_accepts_text_and_sets_and_checks_n(model):
    q = theory.population_quantities(model)
    v = theory.block_loading_bound(q, 100, {0, 1})
    assert theory.block_loading_bound(q, 100, "AB") == v
    assert v > theory.block_loading_bound(q, 400, "AB") > 0
    with pytest.raises(ValidationError, match=r"n must be >= 2; got"):
        theory.block_loading_bound(q, 0, "AB")
    with pytest.raises(ValidationError, match=r"n must be >= 2; got"):
        theory.loading_bound(q, 1, form="paper")


# ------------------------------------------------------------------- memory
def test_random_with_absurd_dims_is_refused_before_allocating():
    with pytest.raises(ValidationError, match=r"HierarchicalFactorModel\.random with dims "
                       r"\(1000000000000, 5\) .*must fit in memory; it would need about "
                       r"48 TB but this machine has .*Use smaller dims or ranks\."):
        hs.HierarchicalFactorModel.random((10**12, 5), S, rng=0)


def test_sample_with_absurd_n_is_refused(model):
    with pytest.raises(ValidationError, match=r"sample\(n_samples=10000000000000\) with d = 7 "
                       r"and K = 3 must fit in memory; it would need about 2\.72 PB"):
        model.sample(10**13, rng=0)


def test_dense_covariances_are_refused_when_they_cannot_fit(monkeypatch):
    monkeypatch.setattr(_validation, "memory_limit_bytes", lambda: 10**8)
    s = hs.Structure.parse("AB:1")
    w = np.zeros((4000, 1))
    m = hs.HierarchicalFactorModel((2000, 2000), s, w, noise_var=1.0)
    pattern = r"d = 4000\) must fit in memory; it would need about 256 MB but this machine has 100 MB"
    with pytest.raises(ValidationError, match=rf"covariance of the model .*{pattern}"):
        m.covariance()
    fit = FitResult(w, 1.0, s, (2000, 2000), 10, "x")
    with pytest.raises(ValidationError, match=rf"fitted covariance .*{pattern}"):
        fit.covariance()
    data = hs.MultimodalData([np.ones((2, 2000)), np.zeros((2, 2000))])
    with pytest.raises(ValidationError, match=rf"sample covariance .*{pattern}"):
        data.sample_cov()
    with pytest.raises(ValidationError, match=r"would need about 400 MB"):
        hs.HierarchicalFactorModel.random((10**7, 10**7), s, rng=0)
    with pytest.raises(ValidationError, match=r"sample\(n_samples=10000\)"):
        m.sample(10**4, rng=0)
    assert m.sample(100, rng=0).n_samples == 100  # 100 x 4000 fits


def test_memory_limit_is_the_physical_memory():
    limit = _validation.memory_limit_bytes()
    assert 2**27 <= limit <= 2**50


# ----------------------------------------------------------- peer estimators
def _data(dims=(4, 5), n=200):
    m = hs.HierarchicalFactorModel.random(dims, S, singular_values=(2.0, 3.0), rng=0)
    return m.sample(n, rng=1)


def test_mofa_refuses_more_factors_than_min_n_d():
    data = _data()
    with pytest.raises(ValidationError, match=r"MOFA's number of factors must be <= "
                       r"min\(n_samples, d\) = min\(200, 9\) = 9 .*got 12, from n_factors"):
        MOFA(n_factors=12).fit(data, rng=0)
    with pytest.raises(ValidationError, match=r"min\(5, 9\) = 5 .*got 7, from n_factors"):
        MOFA(n_factors=7).fit(_data(n=5), rng=0)


def test_mofa_default_factor_count_fits_small_d():
    pytest.importorskip("mofapy2")
    fit = MOFA(max_iter=30).fit(_data(), rng=0)  # d = 9 < 15
    assert fit.diagnostics.extra["n_factors"] == 9


@pytest.mark.parametrize("cls", [AJIVE, GCCA])
def test_jive_view_ranks_larger_than_dims_are_refused(cls):
    data = _data()
    with pytest.raises(ValidationError, match=r"view_ranks\[0\] must be <= d_1 = 4, the "
                       r"dimension of view A .*got 6, from view_ranks"):
        cls(view_ranks=(6, 2)).fit(data)
    with pytest.raises(ValidationError, match=r"view_ranks\[1\] must be <= d_2 = 5, the "
                       r"dimension of view B .*got 7, from the total rank of the blocks on "
                       r"that view in structure AB:3 A:1 B:4"):
        cls().fit(data, structure="AB:3 A:1 B:4")


def test_slide_max_rank_larger_than_the_data_rank_is_refused():
    with pytest.raises(ValidationError, match=r"max_rank must be <= min\(n_samples, d\) = "
                       r"min\(200, 9\) = 9 \(the rank of the data\); got 12"):
        SLIDE(max_rank=12).fit(_data(), rng=0)


# -------------------------------------------------------------- exit codes
HCL_ERRORS = sorted(
    (c for _, c in inspect.getmembers(exceptions, inspect.isclass)
     if issubclass(c, HCLError) and c is not HCLError),
    key=lambda c: c.__name__,
)


def test_every_exception_class_is_covered():
    names = {c.__name__ for c in HCL_ERRORS}
    assert {"ValidationError", "StoreVersionMismatch", "StoreCorruptedError",
            "SolverError", "StudyConfigError", "NotIdentifiableError"} <= names


@pytest.mark.parametrize("cls", HCL_ERRORS, ids=lambda c: c.__name__)
def test_every_hcl_error_exits_2_with_one_line(monkeypatch, capsys, cls):
    def boom(args):
        raise cls("something must be otherwise; got it.")

    monkeypatch.setattr(_cli_fit, "run_check", boom)
    code = main(["check-identifiable", "--dims", "3,3", "--structure", "AB:1"])
    err = capsys.readouterr().err
    assert code == 2 == exit_code(cls("x"))
    assert err == (f"hcl-stats check-identifiable: error: {cls.__name__}: "
                   "something must be otherwise; got it.\n")


def test_unexpected_errors_exit_1(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("bug")

    monkeypatch.setattr(_cli_fit, "run_check", boom)
    assert main(["check-identifiable", "--dims", "3,3", "--structure", "AB:1"]) == 1
    assert "RuntimeError: bug" in capsys.readouterr().err
    assert exit_code(KeyboardInterrupt()) == 130


def test_store_version_mismatch_from_a_real_store_exits_2(tmp_path, capsys):
    from hcl_stats.study import load_study
    from hcl_stats.study.store import ResultStore

    db = tmp_path / "s.sqlite"
    with ResultStore(db) as store:
        store.prepare(load_study(write_tiny(tmp_path / "a")))
    other = write_tiny(tmp_path / "b", seed=8)
    with ResultStore(db) as store, pytest.raises(StoreVersionMismatch, match="seed"):
        store.prepare(load_study(other))
    code = main(["run", str(other), "--store", str(db), "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(r"StoreVersionMismatch: .*seed must be '7' to ", err), err


# --------------------------------------------------------------------- CSV
X = np.array([[1.0, 2.5, -3.0], [4.0, 5.0, 6.25], [7.0, 8.0, 9.0], [0.5, 1.5, 2.5]])


def _write(path, text, *, bom=False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def _rows(a):
    return "\n".join(",".join(repr(float(v)) for v in r) for r in a) + "\n"


def test_bom_without_header_keeps_every_row(tmp_path):
    p = _write(tmp_path / "v.csv", _rows(X), bom=True)
    np.testing.assert_array_equal(_cli_fit._read_csv(p), X)


def test_bom_with_header_skips_only_the_header(tmp_path):
    p = _write(tmp_path / "v.csv", "a,b,c\n" + _rows(X), bom=True)
    np.testing.assert_array_equal(_cli_fit._read_csv(p), X)


def test_a_header_is_any_first_row_with_a_non_numeric_cell(tmp_path):
    p = _write(tmp_path / "v.csv", "1.0,x,3\n" + _rows(X))
    np.testing.assert_array_equal(_cli_fit._read_csv(p), X)


def test_numeric_first_row_is_data_and_column_numbers_warn(tmp_path, caplog):
    p = _write(tmp_path / "v.csv", "0,1,2\n" + _rows(X))
    with caplog.at_level(logging.WARNING, logger="hcl_stats._cli_fit"):
        arr = _cli_fit._read_csv(p)
    np.testing.assert_array_equal(arr, np.vstack([[0, 1, 2], X]))
    assert re.search(r"first row 0,1,2 looks like column numbers but is read as data .*"
                     r"pass --header to skip it", caplog.text), caplog.text
    np.testing.assert_array_equal(_cli_fit._read_csv(p, header=True), X)


def test_numeric_data_rows_do_not_warn(tmp_path, caplog):
    p = _write(tmp_path / "v.csv", _rows(X))
    with caplog.at_level(logging.WARNING, logger="hcl_stats._cli_fit"):
        _cli_fit._read_csv(p)
    assert caplog.text == ""


def test_pandas_index_header_warns(tmp_path, caplog):
    p = _write(tmp_path / "v.csv", ",a,b\n0,1.5,2\n1,3,4.5\n")
    with caplog.at_level(logging.WARNING, logger="hcl_stats._cli_fit"):
        arr = _cli_fit._read_csv(p)
    assert arr.shape == (2, 3)
    assert "header's first cell is empty" in caplog.text


def test_no_header_refuses_a_text_first_row(tmp_path):
    p = _write(tmp_path / "v.csv", "a,b,c\n" + _rows(X))
    with pytest.raises(ValidationError, match=r"must have a numeric first row with "
                       r"--no-header; got the cell 'a'"):
        _cli_fit._read_csv(p, header=False)


def test_bom_header_only_and_semicolons(tmp_path):
    with pytest.raises(ValidationError, match=r"must contain at least one row of numbers; "
                       r"got a header only"):
        _cli_fit._read_csv(_write(tmp_path / "h.csv", "a,b\n", bom=True))
    with pytest.raises(ValidationError, match=r"must contain at least one row of numbers; "
                       r"got an empty file"):
        _cli_fit._read_csv(_write(tmp_path / "e.csv", "\n\n", bom=True))
    p = _write(tmp_path / "s.csv", "x;y;z\n" + _rows(X).replace(",", ";"))
    np.testing.assert_array_equal(_cli_fit._read_csv(p), X)


def test_fit_header_option_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((60, 1))
    a = z @ rng.standard_normal((1, 3)) + 0.3 * rng.standard_normal((60, 3))
    b = z @ rng.standard_normal((1, 4)) + 0.3 * rng.standard_normal((60, 4))
    _write(tmp_path / "a.csv", "0,1,2\n" + _rows(a), bom=True)
    _write(tmp_path / "b.csv", "1,2,3,4\n" + _rows(b))
    base = ["fit", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--structure", "AB:1",
            "--estimator", "naive"]
    assert main([*base, "--header", "--out", str(tmp_path / "h.npz")]) == 0
    assert main([*base, "--out", str(tmp_path / "auto.npz")]) == 0
    capsys.readouterr()
    with np.load(tmp_path / "h.npz") as h, np.load(tmp_path / "auto.npz") as auto:
        assert int(h["n_samples"]) == 60
        assert int(auto["n_samples"]) == 61  # numeric first rows are data by default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"header, and skipped, iff any\s+of its cells is not a number", out)


def test_replay_rep_beyond_the_replications_is_refused(tmp_path, capsys):
    cfg = write_tiny(tmp_path, reps=3)
    assert main(["replay", str(cfg), "--cell", "0", "--rep", "3"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"ValidationError: --rep must be a replicate index in 0\.\.2 "
                     r"\(replications = 3\); got 3\.", err), err


# ------------------------------------------------ hostile probe 9 (library)
def _views9(n=40, dims=(4, 5)):
    g = np.random.default_rng(20269)
    return [g.standard_normal((n, d)) for d in dims]


def _schur_fit9():
    return SchurComplement().fit(_views9(), structure=S)


def _q9():
    m = hs.HierarchicalFactorModel.random((4, 5), S, noise_var=0.5, rng=1)
    return theory.population_quantities(m)


def _mudata9(modalities):
    pytest.importorskip("mudata")
    import anndata
    import mudata

    g = np.random.default_rng(0)
    mods = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata/mudata deprecation chatter
        for k, d in (("a", 3), ("b", 4)):
            ad = anndata.AnnData(g.standard_normal((10, d)))
            ad.obs_names = [f"c{i}" for i in range(10)]
            mods[k] = ad
        md = mudata.MuData(mods)
    return hs_datasets().from_mudata(md, modalities=modalities)


def hs_datasets():
    from hcl_stats import datasets

    return datasets


def _workflow():
    from hcl_stats import workflow

    return workflow


def _transformer(**kw):
    pytest.importorskip("sklearn")
    from hcl_stats.sklearn_compat import HCLTransformer

    return HCLTransformer(**{"dims": (4, 5), "structure": S, "estimator": "schur", **kw})


def _select(**kw):
    from hcl_stats.estimators.rank_counting import select_structure

    return select_structure(**kw)


def _learn(options, select="eigen"):
    from hcl_stats.estimators.learn import learn_structure

    return learn_structure(_views9(), select, options=options)


_COV9 = hs.HierarchicalFactorModel.random((4, 5), S, noise_var=0.5, rng=1).covariance()
_STACK9 = np.hstack(_views9())

PROBE9 = [
    # theory: sample sizes and weights
    ("subspace_bound_n_nan", lambda: theory.subspace_bound(_q9(), np.nan), r"n must be finite; got nan"),
    ("subspace_bound_n_huge", lambda: theory.subspace_bound(_q9(), 10**400), r"n must be a real number .*got 1000"),
    ("loading_bound_n_complex", lambda: theory.loading_bound(_q9(), 100 + 1j), r"n must be a real number or a non-empty array of real numbers; got \(100\+1j\)"),
    ("loading_bound_n_text", lambda: theory.loading_bound(_q9(), [100, "x"]), r"n must be a real number .*got \[100, 'x'\]"),
    ("loading_bound_n_empty", lambda: theory.loading_bound(_q9(), []), r"n must be a real number or a non-empty array"),
    ("beta_error_m_nan", lambda: theory.beta_error_bound(np.nan, 3, residual_var=1.0), r"m must be finite; got nan"),
    ("excess_risk_repr_nan", lambda: theory.excess_risk_bound(100, 3, residual_var=1.0, representation_error=np.nan), r"representation_error must be finite"),
    ("excess_risk_beta_norm_neg", lambda: theory.excess_risk_bound(100, 3, residual_var=1.0, beta_norm=-1.0), r"beta_norm must be >= 0\.0; got -1\.0"),
    ("group_lasso_m_zero", lambda: theory.group_lasso_bound(0, n_relevant=1, max_rank=2, n_structures=3), r"m must be > 0\.0; got 0\.0"),
    ("group_lasso_relevant_gt_structures", lambda: theory.group_lasso_bound(100, n_relevant=5, max_rank=2, n_structures=3), r"n_relevant must be <= n_structures = 3 .*got 5"),
    ("fit_rate_text_values", lambda: theory.fit_rate({"n_samples": ["a", "b", "c"], "error": [0.1, 0.07, 0.05]}), r"data\['n_samples'\] must be numeric; got dtype object with values such as 'a'"),
    ("fit_terms_no_terms", lambda: theory.fit_terms({"e": [1.0, 2.0], "a": [1.0, 3.0]}, "e", []), r"terms must be a non-empty list of column names; got \[\]"),
    ("fit_terms_too_few_rows", lambda: theory.fit_terms({"e": [1.0, 2.0], "a": [1.0, 3.0]}, "e", ["a", "a"]), r"data must have more rows .* than terms \(2\); got 2"),
    # identifiability
    ("identifiable_rank_overflow", lambda: hs.check_identifiable("AB:99999999999999999999", (4, 5)), r"check_identifiable with d = 9 and K = 99999999999999999999 must fit in memory"),
    ("identifiable_dims_too_big", lambda: hs.check_identifiable("AB:1", (10**9, 10**9)), r"d = 2000000000 and K = 1 must fit in memory; it would need about 34 GB"),
    ("identifiable_tol_nan", lambda: hs.check_identifiable(S, (4, 5), tol=np.nan), r"tol must be finite; got nan"),
    ("identifiable_tol_negative", lambda: hs.check_identifiable(S, (4, 5), tol=-1.0), r"tol must be > 0\.0; got -1\.0"),
    ("identifiable_model_other_dims", lambda: hs.check_identifiable(hs.HierarchicalFactorModel.random((4, 5), S, rng=0), (4, 6)), r"dims must be the model's dims \(4, 5\) \(or None\) when checking a model; got \(4, 6\)"),
    # estimators and workflow
    ("init_not_a_fit", lambda: MaskedGradient().fit(_views9(), structure=S, init="x"), r"init must be a FitResult \(a previous fit to start from\) or None; got 'x'"),
    ("init_an_array", lambda: MaskedGradient().fit(_views9(), structure=S, init=np.zeros((9, 3))), r"init must be a FitResult .*got array"),
    ("ajive_view_ranks_text", lambda: AJIVE(view_ranks="12").fit(_views9()), r"view_ranks(\[0\])? must be (a sequence of positive integers, one per view|an integer); got '1'?"),
    ("fit_views_estimator_int", lambda: _workflow().fit_views(_views9(), structure=S, estimator=5), r"estimator must be a registry name or an Estimator instance; got 5\. Registry names: .*schur"),
    ("fit_views_center_text", lambda: _workflow().fit_views(_views9(), structure=S, center="no"), r"center must be True or False; got 'no'"),
    ("fit_views_select_options_list", lambda: _workflow().fit_views(_views9(), select="eigen", select_options=[1]), r"select_options must be a dict of keyword arguments .*got \[1\]"),
    ("fit_views_select_options_unknown", lambda: _workflow().fit_views(_views9(), select="eigen", select_options={"nope": 1}), r"options must contain only keyword arguments of select_structure \(.*view_rank.*\); got 'nope'"),
    ("learn_options_unknown_estimator_key", lambda: _learn({"zzz": 1}, "schur_select"), r"options must contain only keyword arguments of SchurSelect \(leak_share, leak_z, margin, refit, rule, tw\); got 'zzz'"),
    ("learn_options_text", lambda: _learn("zzz"), r"options must be a dict of keyword arguments of select_structure; got 'zzz'"),
    ("schur_select_rule", lambda: _learn({"rule": "nope"}, "schur_select"), r"rule must be one of 'bound', 'sharp'; got 'nope'"),
    ("schur_select_leak_share", lambda: _learn({"rule": "sharp", "leak_share": 2.0}, "schur_select"), r"leak_share must be <= 1.0; got 2.0"),
    ("schur_select_leak_z_nan", lambda: _learn({"leak_z": float("nan")}, "schur_select"), r"leak_z must be finite; got nan"),
    ("bootstrap_unknown_keyword", lambda: _workflow().bootstrap_stability(_views9(), n_boot=2, nope=1), r"select_kwargs must contain only keyword arguments of select_structure .*got 'nope'"),
    ("transform_blocks_int", lambda: _workflow().transform(_schur_fit9(), _views9(), blocks=7), r"blocks must be None, 'shared' or a list of the structure's blocks; got 7"),
    ("transform_blocks_bad_entry", lambda: _workflow().transform(_schur_fit9(), _views9(), blocks=[5]), r"blocks\[0\] must be a non-empty block .*got 5"),
    ("variance_explained_not_a_fit", lambda: _workflow().variance_explained("fit", _COV9), r"fit must be a FitResult or a HierarchicalFactorModel; got 'fit'"),
    ("variance_explained_cov_shape", lambda: _workflow().variance_explained(_schur_fit9(), np.eye(3)), r"cov must have shape \(9, 9\) to match sum\(dims\) = 9; got shape \(3, 3\)"),
    ("variance_explained_cov_nan", lambda: _workflow().variance_explained(_schur_fit9(), np.full((9, 9), np.nan)), r"cov must contain only finite values; got nan"),
    ("select_view_rank_zero", lambda: _select(data=_views9(), view_rank=0), r"view_rank must be >= 1; got 0"),
    ("select_variance_fraction_nan", lambda: _select(data=_views9(), variance_fraction=np.nan), r"variance_fraction must be finite; got nan"),
    ("select_n_per_block_with_data", lambda: _select(data=_views9(), n_per_block=-1), r"n_per_block must be None when data are given .*got -1"),
    ("select_cov_n_per_block_negative", lambda: _select(cov=_COV9, dims=(4, 5), n_per_block=-1), r"n_per_block must be >= 2; got -1"),
    ("select_cov_dims_text", lambda: _select(cov=_COV9, dims="45", n_per_block=100), r"dims must be a sequence of positive integers; got '45'"),
    ("select_cov_nan", lambda: _select(cov=np.full((9, 9), np.nan), dims=(4, 5), n_per_block=100), r"cov must contain only finite values"),
    # scikit-learn transformer
    ("transformer_dims_none", lambda: _transformer(dims=None).fit(_STACK9), r"dims must be a sequence of positive integers; got None"),
    ("transformer_dims_text", lambda: _transformer(dims="4,5").fit(_STACK9), r"dims must be a sequence of positive integers; got '4,5'"),
    ("transformer_blocks", lambda: _transformer(blocks="x").fit(_STACK9), r"blocks must be one of 'shared', 'all', 'widest'; got 'x'"),
    ("transformer_text_X", lambda: _transformer().fit("X"), r"X must be a dense real array of shape \(n, sum of dims\) .*got str of dtype <U1"),
    ("transformer_complex_X", lambda: _transformer().fit(_STACK9 + 0j), r"X must be a dense real array .*dtype complex128"),
    ("transformer_bool_X", lambda: _transformer().fit(_STACK9 > 0), r"X must be a dense real array .*dtype bool"),
    ("transformer_options", lambda: _transformer(structure=None, select="eigen", select_options={"q": 1}).fit(_STACK9), r"got 'q'"),
    # data sets and view names
    ("dataset_rows_out_of_range", lambda: hs_datasets().load_breast_cancer().subset([10**6]), r"rows must be sample indices in -569\.\.568 \(n_samples = 569\); got 1000000"),
    ("dataset_rows_text", lambda: hs_datasets().load_breast_cancer().subset("abc"), r"rows must be a 1-D sequence of integer sample indices or a boolean mask of length n_samples = 569; got 'abc'"),
    ("dataset_rows_short_mask", lambda: hs_datasets().load_breast_cancer().subset(np.array([True, False])), r"got array\(\[ True, False\]\)"),
    ("mini_acc_not_rdata", lambda: hs_datasets().load_mini_acc(path=__file__), r"path must be an R data file \(miniACC\.RData\); got '.*test_hostile_api\.py', which rdata cannot parse"),
    ("mini_acc_log_counts", lambda: hs_datasets().load_mini_acc(path=__file__, log_counts="no"), r"log_counts must be True or False; got 'no'"),
    ("mudata_modalities_text", lambda: _mudata9("ab"), r"modalities must be a list of modality names such as \['a', 'b'\]; got 'ab'"),
    ("view_names_duplicate", lambda: hs.MultimodalData(_views9(), view_names=["a", "a"]), r"view_names must be distinct; got \('a', 'a'\)"),
    ("view_names_text", lambda: hs.MultimodalData(_views9(), view_names="ab"), r"view_names must be a sequence of names, one per view; got 'ab'"),
]


@pytest.mark.parametrize(("thunk", "pattern"), [c[1:] for c in PROBE9], ids=[c[0] for c in PROBE9])
def test_probe9_library_cases_raise_typed_errors(thunk, pattern):
    if "breast_cancer" in inspect.getsource(thunk):
        pytest.importorskip("sklearn")
    if "mini_acc" in inspect.getsource(thunk):
        pytest.importorskip("rdata")
    with pytest.raises(HCLError, match=pattern):
        thunk()


def test_probe9_mini_acc_directory_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"path must be the miniACC\.RData file; got "
                       r"the directory"):
        hs_datasets().load_mini_acc(path=tmp_path)


def test_probe9_valid_neighbours_still_work():
    q = _q9()
    assert theory.subspace_bound(q, [100, 200]).shape == (2,)
    assert theory.group_lasso_bound(100, n_relevant=3, max_rank=2, n_structures=3) > 0
    fit = _schur_fit9()
    z = _workflow().transform(fit, _views9(), blocks=["AB", {1}])
    assert z.shape == (40, 2)
    assert np.all(np.isfinite(z))
    assert _workflow().variance_explained(fit, _COV9).values.shape[1] == 2
    sel = _select(cov=_COV9, dims=(4, 5), n_per_block=np.full((2, 2), 500))
    assert sel.structure.n_views == 2
    with pytest.raises(exceptions.NoStructureError):  # a known option reaches the learner
        _learn({"min_snr": 1e6})


# ---------------------------------------------------- hostile probe 9 (CLI)
def test_probe9_where_matching_no_cell_is_refused(tmp_path, capsys):
    cfg = write_tiny(tmp_path, reps=1)
    code = main(["run", str(cfg), "--store", str(tmp_path / "s.sqlite"), "--where",
                 "n_samples=7", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(r"ValidationError: --where n_samples=7 must match at least one of the "
                     r"study's 2 cells; got none\. Cell ids: ", err), err


def test_probe9_real_data_report_needs_a_data_set(tmp_path, capsys):
    code = main(["real-data-report", "--out", str(tmp_path / "rd"), "--datasets", " , "])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(r"--datasets must name at least one of .*breast_cancer.*; got ' , '\.", err)
    assert not (tmp_path / "rd").exists()


def test_probe9_fit_refuses_to_overwrite_its_input(tmp_path, capsys):
    g = np.random.default_rng(0)
    src = tmp_path / "v.npz"
    np.savez(src, a=g.standard_normal((30, 3)), b=g.standard_normal((30, 4)))
    before = src.read_bytes()
    code = main(["fit", str(src), "--structure", "AB:1", "--estimator", "naive",
                 "--out", str(src)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(r"--out must not be one of the DATA files; got '.*v\.npz', which would "
                     r"overwrite the input\.", err), err
    assert src.read_bytes() == before


# ----------------------- hostile probe 9 (missing, preprocessing, evidence, downstream)
def _missing():
    from hcl_stats import missing

    return missing


def _downstream():
    from hcl_stats import downstream

    return downstream


def _block_evidence(fit):
    from hcl_stats.block_evidence import block_evidence

    m = hs.HierarchicalFactorModel.random((4, 5), S, noise_var=0.5, rng=1)
    return block_evidence(m.sample(60, rng=2), fit, n_null=3, rng=0)


def _noise_variance(cov, dims):
    from hcl_stats.preprocessing import noise_variance

    return noise_variance(cov, dims)


def _check_scales(ratio):
    from hcl_stats.preprocessing import check_scales

    return check_scales(_views9(), ratio=ratio)


PROBE9_MORE = [
    ("drop_views_list", lambda: _missing().drop_views(_views9(), 0.2, rng=0), r"data must be MultimodalData; got \[array.*Wrap a list of arrays with MultimodalData\(views\)"),
    ("pairwise_covariance_list", lambda: _missing().pairwise_covariance(_views9()), r"data must be IncompleteData or MultimodalData; got \[array"),
    ("pairwise_covariance_ddof", lambda: _missing().pairwise_covariance(hs.MultimodalData(_views9()), ddof=-1), r"ddof must be >= 0; got -1"),
    ("fit_missing_estimator_name", lambda: _missing().fit_missing("schur", hs.MultimodalData(_views9()), structure=S), r"estimator must be an Estimator instance \(with fit_covariance\), .*got 'schur'"),
    ("project_psd_nan", lambda: _missing().project_psd(np.full((3, 3), np.nan)), r"a must contain only finite values; got nan at index \(0, 0\)"),
    ("project_psd_1d", lambda: _missing().project_psd(np.ones(3)), r"a must be 2-dimensional; got an array of shape \(3,\)"),
    ("project_psd_not_square", lambda: _missing().project_psd(np.ones((2, 3))), r"a must be a square matrix; got shape \(2, 3\)"),
    ("noise_variance_cov_nan", lambda: _noise_variance(np.full((9, 9), np.nan), (4, 5)), r"cov must contain only finite values"),
    ("noise_variance_dims_mismatch", lambda: _noise_variance(_COV9, (4, 4)), r"cov must have shape \(8, 8\) to match sum\(dims\) = 8; got shape \(9, 9\)"),
    ("check_scales_ratio", lambda: _check_scales(-1.0), r"ratio must be >= 1\.0; got -1\.0"),
    ("check_scales_ratio_nan", lambda: _check_scales(np.nan), r"ratio must be finite; got nan"),
    ("block_evidence_fit_of_other_dims", lambda: _block_evidence(SchurComplement().fit(_views9(dims=(4, 6)), structure=S)), r"fit must be a fit of data with dims \(4, 5\); got a fit with dims \(4, 6\)"),
    ("make_beta_relevant_int", lambda: _downstream().make_beta(hs.Structure.parse(S), relevant=[7], rng=0), r"relevant blocks must be blocks of the structure AB:1 A:1 B:1; got 7"),
    ("lambda_max_no_groups", lambda: _downstream().lambda_max(np.ones(3), [], np.ones(0)), r"groups must be a non-empty list with one entry per weight \(0\); got 0 groups"),
    ("cross_validate_short_y", lambda: _downstream().cross_validate(np.ones((10, 3)), np.ones(9), np.zeros((3, 3)), [np.arange(3)]), r"y must have one entry per row of features \(10\); got 9"),
    ("cross_validate_noise_shape", lambda: _downstream().cross_validate(np.ones((10, 3)), np.ones(10), np.zeros((2, 2)), [np.arange(3)]), r"feature_noise must have shape \(3, 3\) .*got \(2, 2\)"),
]


@pytest.mark.parametrize(("thunk", "pattern"), [c[1:] for c in PROBE9_MORE],
                         ids=[c[0] for c in PROBE9_MORE])
def test_probe9_more_cases_raise_typed_errors(thunk, pattern):
    with pytest.raises(HCLError, match=pattern):
        thunk()
