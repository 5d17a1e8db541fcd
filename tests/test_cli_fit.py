import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats.cli import main


@pytest.fixture
def data_file(tmp_path):
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 AB:1 C:1", noise_var=0.2, rng=0)
    data = model.sample(400, rng=1)
    path = tmp_path / "views.npz"
    np.savez(path, text=data.Xs[0], image=data.Xs[1], audio=data.Xs[2])
    return path, model, data


def test_fit_round_trip(data_file, tmp_path, capsys):
    path, model, data = data_file
    out = tmp_path / "fit.npz"
    code = main(["fit", str(path), "--structure", "ABC:1 AB:1 C:1", "--out", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "Hierarchical factor model fit" in stdout
    with np.load(out) as res:
        assert str(res["structure"]) == "ABC:1 AB:1 C:1"
        assert res["loadings"].shape == (18, 3)
        assert tuple(res["dims"]) == (5, 6, 7)
        assert list(res["view_names"]) == ["text", "image", "audio"]
        direct = hs.estimators.get(hs.estimators.DEFAULT)().fit(data, structure="ABC:1 AB:1 C:1")
        np.testing.assert_allclose(res["loadings"], direct.loadings)
        np.testing.assert_allclose(res["gram_AB"], direct.gram({0, 1}))
        assert float(res["noise_var"]) == pytest.approx(direct.noise_var)


@pytest.mark.parametrize(("flag", "weights"), [(None, True), ("--view-weights", True),
                                              ("--no-view-weights", False)])
def test_view_weights_flag_picks_the_estimator(data_file, tmp_path, flag, weights):
    """The default fit shrinks with view weights; --no-view-weights with one weight per
    component; on data where the two differ, each output is its own estimator's."""
    path, _, data = data_file
    out = tmp_path / "fit.npz"
    extra = [] if flag is None else [flag]
    assert main(["fit", str(path), "--structure", "ABC:1 A:1", *extra, "--out", str(out)]) == 0
    with np.load(out) as res:
        direct = hs.estimators.MaskedShrink(view_weights=weights).fit(data, structure="ABC:1 A:1")
        other = hs.estimators.MaskedShrink(view_weights=not weights).fit(data,
                                                                         structure="ABC:1 A:1")
        np.testing.assert_allclose(res["loadings"], direct.loadings, atol=1e-12)
        assert np.abs(res["loadings"] - other.loadings).max() > 1e-8


@pytest.mark.parametrize("estimator", [None, "schur_select"])
def test_select_rule_reaches_the_learner_and_its_evidence(data_file, tmp_path, estimator,
                                                          monkeypatch):
    """--select-rule sharp: the structure of SchurSelect(rule='sharp'), and the block
    evidence re-runs that learner, not the default rule."""
    path, _, data = data_file
    out = tmp_path / "fit.npz"
    seen = []
    import hcl_stats.block_evidence as be

    real = be.block_evidence

    def spy(*args, **kwargs):
        seen.append(kwargs["learner"])
        return real(*args, **kwargs)

    monkeypatch.setattr(be, "block_evidence", spy)
    extra = [] if estimator is None else ["--estimator", estimator]
    assert main(["fit", str(path), "--select-rule", "sharp", "--null-draws", "0",
                 "--out", str(out), *extra]) == 0
    direct = hs.estimators.SchurSelect(rule="sharp").fit(data)
    with np.load(out) as res:
        assert str(res["structure"]) == str(direct.structure)
    assert isinstance(seen[0], hs.estimators.SchurSelect)
    assert seen[0].rule == "sharp"


def test_resample_reaches_the_selection_frequencies(data_file, tmp_path, monkeypatch):
    path, _, _ = data_file
    import hcl_stats.block_evidence as be

    seen, real = [], be.block_evidence

    def spy(*args, **kwargs):
        seen.append(kwargs.get("resample"))
        return real(*args, **kwargs)

    monkeypatch.setattr(be, "block_evidence", spy)
    for resample in ("subsample", None):
        extra = [] if resample is None else ["--resample", resample]
        assert main(["fit", str(path), "--null-draws", "0", "--bootstrap", "2",
                     "--out", str(tmp_path / "f.npz"), *extra]) == 0
    assert seen == ["subsample", "bootstrap"]


def test_fit_from_csv_files(data_file, tmp_path):
    _, _, data = data_file
    paths = []
    for i, x in enumerate(data.Xs):
        p = tmp_path / f"view{i}.csv"
        header = ",".join(f"f{j}" for j in range(x.shape[1]))
        np.savetxt(p, x, delimiter=",", header=header if i == 0 else "", comments="")
        paths.append(str(p))
    out = tmp_path / "fit.npz"
    assert main(["fit", *paths, "--structure", "all:1", "--estimator", "schur", "--out", str(out)]) == 0
    with np.load(out) as res:
        assert str(res["structure"]) == "ABC:1 AB:1 AC:1 BC:1 A:1 B:1 C:1"
        direct = hs.estimators.SchurComplement().fit(data, structure="all:1")
        np.testing.assert_allclose(res["loadings"], direct.loadings, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--structure", "ABD:1"], "uses view 'D' but there are only 3 views"),
        (["--structure", "ABC:1", "--noise", "loud"], "--noise must be 'scalar', 'per_view' or a positive number"),
        (["--structure", "ABC:1", "--out", "x.txt"], "--out must end in .npz"),
        (["--structure", "ABC:1", "--estimator", "schur", "--view-weights"],
         "--view-weights applies to --estimator masked_shrink only; got --estimator schur"),
        (["--structure", "ABC:1", "--estimator", "naive", "--no-view-weights"],
         "--no-view-weights applies to --estimator masked_shrink only; got --estimator naive"),
        (["--structure", "ABC:1", "--out", "/nonexistent/dir/x.npz"], "does not exist"),
        (["--structure", "ABC:1", "--select-rule", "sharp"],
         "--select-rule applies to the schur_select learner only"),
        (["--select", "eigen", "--select-rule", "sharp"], "got --select-rule sharp with "
         "--select eigen."),
        (["--estimator", "convex_fast", "--select-rule", "sharp"],
         "got --select-rule sharp with --estimator convex_fast."),
    ],
)
def test_fit_errors_are_one_line_with_exit_code_2(data_file, tmp_path, capsys, args, message):
    path, _, _ = data_file
    full = ["fit", str(path), "--out", str(tmp_path / "o.npz"), *args]
    if "--out" in args:
        full = ["fit", str(path), *args]
    assert main(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]


def test_missing_data_file(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope.npz"), "--structure", "A:1", "--out", str(tmp_path / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_check_identifiable_exit_codes(capsys):
    assert main(["check-identifiable", "--dims", "100,500,800", "--structure", "all:3"]) == 0
    assert "identified" in capsys.readouterr().out
    assert main(["check-identifiable", "--dims", "1,1", "--structure", "AB:1 A:1 B:1"]) == 1
    out = capsys.readouterr().out
    assert "d = 2 <= K = 3" in out
    assert main(["check-identifiable", "--dims", "1,x", "--structure", "A:1"]) == 2


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "check-identifiable" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    ["fit", "check-identifiable", "validate", "run", "status", "summarize", "report",
     "replay", "export", "real-data-report", "rates"],
)
def test_every_command_has_help(command, capsys):
    assert main(["--help"]) == 0
    assert command in capsys.readouterr().out
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hcl-stats {command}")
    assert "options:" in out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: hcl-stats" in capsys.readouterr().err


def test_fit_writes_no_gram_of_a_block_wider_than_the_limit(tmp_path, capsys, monkeypatch):
    """gram_<BLOCK> (d_S x d_S) is written only for blocks of at most GRAM_MAX_ROWS
    rows; the others are named on stderr and rebuild from 'loadings'."""
    from hcl_stats.cli import fit as cli_fit

    monkeypatch.setattr(cli_fit, "GRAM_MAX_ROWS", 12)  # the limit, at test size
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 AB:1 C:1", noise_var=0.2, rng=0)
    path, out = tmp_path / "views.npz", tmp_path / "fit.npz"
    np.savez(path, *model.sample(300, rng=1).Xs)
    assert main(["fit", str(path), "--structure", "ABC:1 AB:1 C:1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "gram_ABC not written: its block has d_S = 18 > 12 rows" in err
    with np.load(out) as res:
        assert {"gram_AB", "gram_C"} <= set(res.files)
        assert "gram_ABC" not in res.files
        w = res["loadings"]
        np.testing.assert_allclose(res["gram_AB"], w[:11, 1:2] @ w[:11, 1:2].T)
