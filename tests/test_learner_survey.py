"""Every structure learner finishes on real data: a fit or a typed refusal, never a crash."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats._learner_survey import (
    LearnerRun,
    _fit,
    learner_names,
    run_learner,
    survey_markdown,
)
from hcl_stats.exceptions import ConvergenceWarning, HCLError, NumericalWarning
from hcl_stats.identifiability import check_identifiable

HCL_WARNINGS = (NumericalWarning, ConvergenceWarning)


@pytest.fixture(scope="module")
def breast_cancer_raw():
    pytest.importorskip("sklearn")
    from hcl_stats import datasets

    return datasets.load("breast_cancer").data


def _slow(name):
    return pytest.param(name, marks=pytest.mark.slow) if name == "convex_fast" else name


@pytest.mark.parametrize("learner", [_slow(x) for x in learner_names()])
def test_each_learner_fits_or_refuses_on_breast_cancer_raw(breast_cancer_raw, learner):
    # raw columns span 1e-4 .. 1e3: a learner may refuse, with a typed error that
    # names the rule, but must not crash or return a structure it cannot fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = _fit(learner, breast_cancer_raw)
        except HCLError as exc:
            fit = exc
    # warnings are allowed if they are the package's own, typed ones
    assert all(issubclass(w.category, HCL_WARNINGS) for w in caught), [str(w.message) for w in caught]
    if isinstance(fit, HCLError):
        assert len(str(fit)) > 20
        return
    assert check_identifiable(fit.structure, fit.dims).identifiable
    assert np.all(np.isfinite(fit.loadings))
    assert fit.structure.total_rank < sum(fit.dims)


def _strong_abc_c(rng):
    """1500 rows of a strong ``ABC:1 C:1`` model on d = (4, 5, 6)."""
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 C:1", singular_values=(2.0, 3.0),
                                              rng=rng)
    return model.sample(1500, rng=rng)


def test_run_learner_reports_fit_evidence_frequency_and_timeout(rng):
    data = _strong_abc_c(rng)
    run = run_learner("schur_select", data, n_null=4, n_boot=2, seed=1, timeout=300)
    assert run.status == "fitted"
    assert run.structure == "ABC:1 C:1"
    assert run.evidence.row("ABC").fitted_rank == 1
    assert run.frequency.n_boot == 2
    stopped = run_learner("schur_select", data, n_null=50, n_boot=0, seed=1, timeout=1e-3)
    assert stopped.notes
    assert "limit" in stopped.notes[0]
    md = "\n".join(survey_markdown("t", [run, stopped], ("a", "b", "c")))
    assert "| schur_select | fitted | `ABC:1 C:1` |" in md
    assert "| ABC | a,b,c | 1 |" in md


def test_survey_marks_crashes_and_refusals():
    runs = [LearnerRun("slide", "error", 1.0, message="KeyError: 3"),
            LearnerRun("eigen", "refused", 0.5, message="NotIdentifiableError: d_O = 10 < k_O = 14")]
    md = "\n".join(survey_markdown("x", runs, None))
    assert "**crash**: KeyError: 3" in md
    assert "typed refusal: NotIdentifiableError: d_O = 10 < k_O = 14" in md


def test_run_learner_without_test_keeps_signal_edge_and_frequencies(rng):
    # n_null = 0 (the default above d = 300 or M = 4): the evidence table has the
    # signal and edge of every candidate but no p-value, and resampling still runs
    data = _strong_abc_c(rng)
    run = run_learner("schur_select", data, n_null=0, n_boot=2, seed=1, timeout=300)
    assert run.status == "fitted"
    assert len(run.evidence.rows) == 7
    assert all(row.p_value is None and row.decision == "not tested" for row in run.evidence.rows)
    assert run.evidence.row("ABC").signal > run.evidence.row("ABC").edge
    assert run.frequency.n_boot == 2
    md = "\n".join(survey_markdown("t", [run], ("a", "b", "c")))
    assert "no test of r_S = 0" in md
    assert "| ABC | a,b,c | 1 |" in md
    assert "| - | not tested |" in md


def test_default_null_draws_follows_the_size_rule():
    from hcl_stats.block_evidence import default_null_draws

    assert default_null_draws((100, 100, 100)) == 99  # d = 300, M = 3: the edge is in
    assert default_null_draws((100, 100, 101)) == 0  # d = 301
    assert default_null_draws((1, 1, 1, 1)) == 99
    assert default_null_draws((1, 1, 1, 1, 1)) == 0  # M = 5
    assert default_null_draws((10, 10), draws=19) == 19


def test_slide_survey_row_reproduces_from_the_seed():
    # slide draws its bi-cross-validation folds (its structure here changes with
    # them): the survey's fit takes them from the seed, so two runs agree exactly
    model = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 C:1",
                                              singular_values=(1.0, 1.2), rng=3)
    data = model.sample(120, rng=4)
    fits = [_fit("slide", data, seed=11) for _ in range(2)]
    assert fits[0].structure == fits[1].structure
    np.testing.assert_array_equal(fits[0].loadings, fits[1].loadings)


@pytest.mark.slow
def test_slide_resampled_selections_reproduce_from_the_seed():
    from hcl_stats.block_evidence import selection_frequency

    model = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 C:1",
                                              singular_values=(1.0, 1.2), rng=3)
    data = model.sample(120, rng=4)
    freqs = [selection_frequency(data, learner="slide", n_boot=2, rng=5) for _ in range(2)]
    assert freqs[0].blocks == freqs[1].blocks
    assert freqs[0].rank_counts == freqs[1].rank_counts
