"""One default learner, a fittable search space, the scale warning (issue 19)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hcl_stats as hs
from hcl_stats.cli import main
from hcl_stats.estimators.fittable import fittable_violation, make_fittable
from hcl_stats.estimators.learn import DEFAULT_SELECTOR, SELECTORS, learn_structure
from hcl_stats.exceptions import (
    ConvergenceWarning,
    NoStructureError,
    NotIdentifiableError,
    NumericalWarning,
    ScaleWarning,
    ValidationError,
)
from hcl_stats.preprocessing import check_scales
from hcl_stats.workflow import fit_views

STRONG = [
    ((8, 12, 15), "ABC:2 AB:1 C:1"),
    ((10, 12, 14, 16), "ABCD:2 AB:1 CD:1 A:1 D:2"),
]


# ------------------------------------------------------------ default learner
def test_default_learner_is_schur_select():
    assert DEFAULT_SELECTOR == "schur_select"
    assert set(SELECTORS) == {"schur_select", "convex_fast", "convex", "eigen",
                              "correlation", "slide"}


@pytest.mark.parametrize(("dims", "truth"), STRONG)
def test_default_learner_recovers_strong_designs_with_absent_blocks(dims, truth, global_seed):
    model = hs.HierarchicalFactorModel.random(dims, truth, singular_values=(2.0, 3.0),
                                              rng=global_seed)
    data = model.sample(5000, rng=global_seed + 1000)
    learned = learn_structure(data)
    assert learned.selector == "schur_select"
    assert learned.structure == model.structure
    assert learned.changes == ()


def test_correlation_stays_reachable_and_over_selects_specific_blocks():
    # the evidence for the change of default: the old rule adds specific ranks
    model = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
                                              singular_values=(2.0, 3.0), rng=0)
    data = model.sample(5000, rng=1)
    old = learn_structure(data, "correlation")
    assert old.selection is not None
    assert old.selected.total_rank > model.structure.total_rank


def test_select_is_validated_with_a_typed_error():
    data = hs.HierarchicalFactorModel.random((4, 5), "AB:1", rng=0).sample(100, rng=0)
    with pytest.raises(ValidationError, match="select must be one of .*got 'pca'"):
        learn_structure(data, "pca")
    with pytest.raises(ValidationError, match="select must be one of"):
        fit_views(data, select="pca")


def test_fit_views_and_transformer_use_the_default_learner_and_select():
    pytest.importorskip("sklearn")
    from hcl_stats.sklearn_compat import HCLTransformer

    model = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
                                              singular_values=(2.0, 3.0), rng=0)
    data = model.sample(3000, rng=1)
    vf = fit_views(data, scale="none", noise_rule="scalar", estimator="schur")
    assert vf.extra["select"] == "schur_select"
    assert str(vf.fit.structure) == str(model.structure)
    vf_old = fit_views(data, scale="none", select="correlation", estimator="schur")
    assert vf_old.extra["select"] == "correlation"
    assert vf_old.selection is not None
    # select_options['method'] keeps the behaviour from before `select` existed
    legacy = fit_views(data, scale="none", estimator="schur",
                       select_options={"method": "eigen"})
    assert legacy.extra["select"] == "eigen"
    t = HCLTransformer(model.dims, scale="none", estimator="schur").fit(data.stacked)
    assert str(t.structure_) == str(model.structure)
    t = HCLTransformer(model.dims, scale="none", estimator="schur",
                       select="eigen").fit(data.stacked)
    assert t.views_fit_.extra["select"] == "eigen"


def test_cli_select_option(tmp_path, capsys):
    model = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
                                              singular_values=(2.0, 3.0), rng=0)
    path = tmp_path / "views.npz"
    np.savez(path, *model.sample(2000, rng=1).Xs)
    out = tmp_path / "fit.npz"
    assert main(["fit", str(path), "--out", str(out), "--no-evidence"]) == 0
    assert "selected structure (schur_select): ABC:2 AB:1 C:1" in capsys.readouterr().err
    assert str(np.load(out)["structure"]) == "ABC:2 AB:1 C:1"
    assert main(["fit", str(path), "--out", str(out), "--select", "eigen",
                 "--no-evidence"]) == 0
    assert "selected structure (eigen)" in capsys.readouterr().err
    assert main(["fit", str(path), "--out", str(out), "--select", "pca"]) == 2
    assert "--select must be one of schur_select" in capsys.readouterr().err
    assert main(["fit", str(path), "--out", str(out), "--select", "eigen",
                 "--estimator", "schur_select"]) == 2
    assert "learns the structure itself" in capsys.readouterr().err


# ------------------------------------------------------------ fittable space
def test_make_fittable_lowers_the_offending_blocks_only():
    s, changes = make_fittable(hs.Structure.parse("ABC:3 AB:2 C:9"), (10, 10, 10),
                               noise="scalar")
    assert str(s) == "ABC:3 AB:2 C:7"
    assert len(changes) == 2
    assert all(c.startswith("C:") for c in changes)
    fine = hs.Structure.parse("ABC:1 AB:1 C:1")
    assert make_fittable(fine, (3, 3, 3)) == (fine, ())
    assert fittable_violation(fine, (3, 3, 3)) is None


def test_make_fittable_lowers_the_weakest_scored_direction_first():
    s = hs.Structure.parse("AB:2 A:1 B:2")  # k_B = 4 = d_B: no noise direction in B
    scores = {"AB": {"eigenvalues": [9.0, 5.0, 0.1], "edge": 1.0},
              "A": {"eigenvalues": [4.0, 0.1, 0.1], "edge": 1.0},
              "B": {"eigenvalues": [8.0, 1.5, 0.1], "edge": 1.0}}
    fitted, changes = make_fittable(s, (4, 4), scores=scores)
    assert str(fitted) == "AB:2 A:1 B:1"  # B's second direction is the weakest
    assert changes == ("B:2->1 (view B has d_m = 4 <= k_m = 4)",)


def test_make_fittable_returns_none_when_nothing_is_left():
    s = hs.Structure.parse("A:1")
    assert make_fittable(s, (1,)) == (None, ("A:1->0 (view A has d_m = 1 <= k_m = 1)",))


def test_no_structure_is_one_typed_error(global_seed):
    rng = np.random.default_rng(global_seed)
    noise = hs.MultimodalData([rng.standard_normal((400, d)) for d in (6, 7, 8)])
    with pytest.raises(NoStructureError, match="^the data support no shared structure"):
        learn_structure(noise)
    assert issubclass(NoStructureError, NotIdentifiableError)
    assert issubclass(NoStructureError, ValidationError)


def _designs():
    """Small designs at the edge of the rank budget (d_m from k_m - 1 to k_m + 3)."""
    from hcl_stats.testing.strategies import structures

    @st.composite
    def draw(draw_):
        s = draw_(structures(max_views=3))
        dims = tuple(max(1, s.view_rank(m) + draw_(st.integers(-1, 3)))
                     for m in range(s.n_views))
        dims = tuple(max([d, *(r for b, r in zip(s.blocks, s.ranks, strict=True)
                                if m in b)]) for m, d in enumerate(dims))
        return s, dims

    return draw()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# convex_fast used to raise a bare NotIdentifiableError when it selected no block
@example(design=(hs.Structure.parse("A:1", n_views=2), (1, 1)), n=60, seed=0,
         select="convex_fast")
@given(design=_designs(), n=st.sampled_from([60, 300, 3000]), seed=st.integers(0, 99),
       select=st.sampled_from(["schur_select", "eigen", "correlation", "convex_fast"]))
def test_learned_structures_always_pass_the_identifiability_checker(design, n, seed, select):
    structure, dims = design
    model = hs.HierarchicalFactorModel.random(dims, structure, singular_values=(0.5, 3.0),
                                              rng=seed)
    data = model.sample(n, rng=seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        warnings.simplefilter("ignore", ScaleWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            learned = learn_structure(data, select)
        except NoStructureError:
            return
    report = hs.check_identifiable(learned.structure, dims)
    assert report.identifiable, str(report)
    assert "schur" in report.exact_estimators, str(report)
    assert fittable_violation(learned.structure, dims, noise="per_view",
                              n_samples=n) is None


@pytest.fixture(scope="module")
def breast_cancer_raw(tmp_path_factory):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x = sklearn_datasets.load_breast_cancer().data
    path = tmp_path_factory.mktemp("bc") / "breast_cancer.npz"
    np.savez(path, mean=x[:, :10], se=x[:, 10:20], worst=x[:, 20:30])
    return path


@pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.NumericalWarning")
@pytest.mark.parametrize("select", ["schur_select", "convex_fast", "correlation"])
@pytest.mark.parametrize("preprocess", ["none", "feature"])
def test_breast_cancer_raw_never_stops_on_an_unfittable_structure(
    breast_cancer_raw, tmp_path, capsys, select, preprocess
):
    out = tmp_path / "fit.npz"
    code = main(["fit", str(breast_cancer_raw), "--select", select, "--preprocess",
                 preprocess, "--out", str(out), "--no-evidence"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "NotIdentifiableError" not in err
    structure = hs.Structure.parse(str(np.load(out)["structure"]), n_views=3)
    assert hs.check_identifiable(structure, (10, 10, 10)).identifiable
    if preprocess == "none":  # the columns' scales differ by 2e5
        assert "warning: column standard deviations differ by a factor 2.15e+05" in err
        assert "--preprocess feature" in err
    else:
        assert "column standard deviations" not in err


@pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.NumericalWarning")
@pytest.mark.parametrize("estimator", ["schur_select", "convex_fast"])
def test_learning_estimators_refit_a_fittable_structure(breast_cancer_raw, estimator):
    views = [np.load(breast_cancer_raw)[k] for k in ("mean", "se", "worst")]
    data = hs.preprocessing.Preprocessor.fit(hs.MultimodalData(views), scale="feature")
    data = data.transform(hs.MultimodalData(views))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = hs.estimators.get(estimator)().fit(data)
    extra = fit.diagnostics.extra
    assert hs.check_identifiable(fit.structure, (10, 10, 10)).identifiable
    assert "selected_structure" in extra
    assert isinstance(extra["fittable_changes"], list)


# ------------------------------------------------------------------- scales
def test_scale_warning_names_views_and_columns(global_seed):
    rng = np.random.default_rng(global_seed)
    a, b = rng.standard_normal((80, 4)), rng.standard_normal((80, 3))
    with pytest.warns(ScaleWarning, match=r"view rna, column 2\).*view atac, column 1"):
        check_scales([a * [1, 1, 1e-3, 1], b * [1, 1e2, 1]], ["rna", "atac"])
    with pytest.warns(ScaleWarning, match="noise_rule='per_view'"):
        check_scales([a, b * 1e5])  # only the views differ
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_scales([a, b * 1e3]) < 1e4
        assert check_scales([a[:, :1], np.ones((80, 2))]) == 1.0  # constants ignored


def test_fit_views_warns_about_scales_unless_features_are_standardised():
    model = hs.HierarchicalFactorModel.random((5, 6), "AB:1 A:1", rng=0)
    x, y = model.sample(300, rng=0).Xs
    views = [x * np.array([1, 1, 1, 1, 1e5]), y]
    with pytest.warns(ScaleWarning, match="scale='feature'"):
        fit_views(views, structure="AB:1 A:1", estimator="schur", scale="view")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleWarning)
        fit_views(views, structure="AB:1 A:1", estimator="schur", scale="feature")


# ------------------------------------------------------------------ cvxpy size
def test_convex_refuses_sizes_it_cannot_hold_through_select():
    pytest.importorskip("cvxpy")
    model = hs.HierarchicalFactorModel.random((30, 30, 30), "ABC:1", rng=0)
    data = model.sample(200, rng=0)
    with pytest.raises(ValidationError, match="must fit in memory.*'convex_fast'"):
        learn_structure(data, "convex", options={"max_memory_gb": 0.5})
