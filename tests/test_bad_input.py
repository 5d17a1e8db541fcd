"""Catalogue of bad inputs across the public API (issue 9, part 1).

Every case expects a typed error from :mod:`hcl_stats.exceptions` whose message
names the argument, the offending value and the rule (``match=`` on all three where
the message has them). CLI cases go through ``hcl_stats.cli.main`` and check the
exit code and the one-line error on stderr. The hypothesis fuzzers at the end check
that arbitrary text and arbitrary arrays never escape as a non-package exception
and never produce a result containing NaN.

Decisions recorded here (and in the docstring of ``check_float_array``):

* integer arrays are ACCEPTED and cast to float64 (exact up to 2**53; counts are
  common data); integers beyond 2**53, booleans, complex, strings and objects raise;
* ``n_samples < K + 2`` raises (the centred sample covariance has rank ``n - 1``,
  which must exceed ``K``), in ``fit`` and in ``fit_covariance`` when ``n_samples``
  is given;
* a constant column raises in ``fit`` (zero variance contradicts ``sigma^2 > 0``),
  and so does a non-positive diagonal entry in ``fit_covariance``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hcl_stats as hs
from hcl_stats import (
    HierarchicalFactorModel,
    MultimodalData,
    Structure,
    check_identifiable,
)
from hcl_stats._validation import check_covariance, check_float_array
from hcl_stats.cli import main
from hcl_stats.estimators import MaskedGradient, NaivePCA, SchurComplement
from hcl_stats.exceptions import (
    ConvergenceWarning,
    HCLError,
    NotIdentifiableError,
    NumericalWarning,
    StudyConfigError,
    ValidationError,
)

# Fixed, valid ingredients; each case breaks exactly one thing.
_G = np.random.default_rng(20260)
X0 = _G.standard_normal((40, 4))
X1 = _G.standard_normal((40, 5))
GOOD = [X0, X1]
S2 = "AB:1 A:1 B:1"
MODEL = HierarchicalFactorModel.random((4, 5), S2, noise_var=0.5, rng=1)
COV = MODEL.covariance()


def _with(arr, index, value, dtype=float):
    out = np.array(arr, dtype=dtype)
    out[index] = value
    return out


def _schur(**kw):
    return lambda views: SchurComplement(**kw).fit(views, structure=S2)


# (id, thunk, error type, regex that must match the message)
CASES = [
    # ---- NaN / inf -------------------------------------------------------------
    ("nan_in_view", lambda: _schur()([X0, _with(X1, (3, 2), np.nan)]),
     ValidationError, r"views\[1\] must contain only finite values; got nan at index \(3, 2\)"),
    ("inf_in_view", lambda: MultimodalData([_with(X0, (0, 1), np.inf), X1]),
     ValidationError, r"views\[0\] must contain only finite values; got inf at index \(0, 1\)"),
    ("neg_inf_in_cov", lambda: SchurComplement().fit_covariance(
        _with(COV, (2, 2), -np.inf), dims=(4, 5), structure=S2),
     ValidationError, r"cov must contain only finite values; got -inf at index \(2, 2\)"),
    ("nan_in_loadings", lambda: HierarchicalFactorModel(
        (4, 5), Structure.parse("AB:1"), np.full((9, 1), np.nan), 1.0),
     ValidationError, r"loadings must contain only finite values; got nan"),
    ("overflowing_values", lambda: _schur()([X0 * 1e200, X1]),
     ValidationError, r"views\[0\] must have entries of magnitude < .*; got \d\.\d+e\+200"),
    # ---- dtypes ----------------------------------------------------------------
    ("object_dtype", lambda: MultimodalData([X0.astype(object), X1]),
     ValidationError, r"views\[0\] must have a floating-point or integer dtype; got dtype object"),
    ("complex_dtype", lambda: MultimodalData([X0, X1 + 1j]),
     ValidationError, r"views\[1\] must be real-valued; got complex dtype complex128"),
    ("bool_dtype", lambda: MultimodalData([X0 > 0, X1]),
     ValidationError, r"views\[0\] must have a floating-point or integer dtype; got dtype bool"),
    ("string_dtype", lambda: MultimodalData([X0.astype(str), X1]),
     ValidationError, r"views\[0\] must have a floating-point or integer dtype; got dtype <U"),
    ("int_beyond_2_53", lambda: MultimodalData([_with(X0, (1, 1), 2**60, np.int64), X1]),
     ValidationError, r"views\[0\] must have integer entries of magnitude <= 2\*\*53 .*got 1152921504606846976 at index \(1, 1\)"),
    ("ragged_nested_list", lambda: MultimodalData([[[1.0, 2.0], [3.0]], X1]),
     ValidationError, r"views\[0\] must be a rectangular numeric array; got list"),
    ("complex_cov", lambda: SchurComplement().fit_covariance(
        COV.astype(complex), dims=(4, 5), structure=S2),
     ValidationError, r"cov must be real-valued; got complex dtype complex128"),
    # ---- shapes ----------------------------------------------------------------
    ("one_d_view", lambda: MultimodalData([X0[:, 0], X1]),
     ValidationError, r"views\[0\] must be 2-dimensional; got an array of shape \(40,\)"),
    ("three_d_view", lambda: MultimodalData([X0, X1[:, :, None]]),
     ValidationError, r"views\[1\] must be 2-dimensional; got an array of shape \(40, 5, 1\)"),
    ("row_count_mismatch", lambda: _schur()([X0, X1[:39]]),
     ValidationError, r"views\[1\] has 39 rows but views\[0\] has 40; all views must have the same number of samples"),
    ("zero_width_view", lambda: MultimodalData([X0[:, :0], X1]),
     ValidationError, r"views\[0\] must have at least one column \(d_1 >= 1\); got shape \(40, 0\)"),
    ("stacked_array_as_views", lambda: MultimodalData(np.hstack(GOOD)),
     ValidationError, r"views must be a list of 2-D arrays, one per view; got ndarray"),
    ("no_views", lambda: MultimodalData([]),
     ValidationError, r"views must contain at least one view; got 0"),
    ("stacked_width_mismatch", lambda: MultimodalData.from_stacked(np.hstack(GOOD), (4, 4)),
     ValidationError, r"X has 9 columns but sum\(dims\) = 8"),
    ("dims_zero", lambda: HierarchicalFactorModel.random((0, 5), S2),
     ValidationError, r"dims\[0\] must be a positive integer; got 0"),
    ("dims_not_int", lambda: check_identifiable(S2, dims=(4.0, 5)),
     ValidationError, r"dims\[0\] must be a positive integer; got 4\.0"),
    # ---- sample size -----------------------------------------------------------
    ("n_equals_1", lambda: MultimodalData([X0[:1], X1[:1]]),
     ValidationError, r"n_samples must be >= 2 to estimate a covariance; got 1"),
    ("n_below_K_plus_2_fit", lambda: SchurComplement().fit(
        [X0[:5], X1[:5]], structure="AB:2 A:2 B:2"),
     ValidationError, r"n_samples must be >= K \+ 2 = 8 .*total rank K = 6\); got 5"),
    ("n_below_K_plus_2_cov", lambda: SchurComplement().fit_covariance(
        COV, dims=(4, 5), structure=S2, n_samples=4),
     ValidationError, r"n_samples must be >= K \+ 2 = 5 .*; got 4"),
    ("n_samples_1_cov", lambda: NaivePCA().fit_covariance(
        COV, dims=(4, 5), structure=S2, n_samples=1),
     ValidationError, r"n_samples must be >= 2; got 1"),
    # ---- constant column / singular covariance ----------------------------------
    ("constant_column", lambda: _schur()([_with(X0, (slice(None), 3), 7.0), X1]),
     ValidationError, r"views\[0\]\[:, 3\] must vary across samples .*sigma\^2 > 0.*got a constant column equal to 7\.0"),
    ("zero_variance_in_cov", lambda: SchurComplement().fit_covariance(
        _zero_row(COV, 4), dims=(4, 5), structure=S2),
     ValidationError, r"cov\[4, 4\] must be > 0 .*sigma\^2 > 0.*; got 0\.0"),
    ("singular_cov_noise", lambda: SchurComplement().fit_covariance(
        MODEL.signal_covariance() + 1e-300 * np.eye(9), dims=(4, 5), structure=S2),
     ValidationError, r"estimated sigma\^2 must exceed 1e-12 times the largest variance \(.*\); got .*singular"),
    ("nonsymmetric_cov", lambda: SchurComplement().fit_covariance(
        COV + np.triu(np.full((9, 9), 0.1), 1), dims=(4, 5), structure=S2),
     ValidationError, r"cov must be symmetric; got max \|cov - cov\.T\| = 0\.1"),
    ("indefinite_cov", lambda: SchurComplement().fit_covariance(
        COV - 5 * np.eye(9), dims=(4, 5), structure=S2),
     ValidationError, r"cov must be positive semi-definite; got smallest eigenvalue -"),
    ("zero_cov", lambda: SchurComplement().fit_covariance(
        np.zeros((9, 9)), dims=(4, 5), structure=S2),
     ValidationError, r"cov must not be the zero matrix"),
    ("nonsquare_cov", lambda: SchurComplement().fit_covariance(
        COV[:, :8], dims=(4, 5), structure=S2),
     ValidationError, r"cov must be square; got shape \(9, 8\)"),
    ("cov_dims_mismatch", lambda: SchurComplement().fit_covariance(
        COV, dims=(4, 4), structure=S2),
     ValidationError, r"cov must have shape \(8, 8\) to match sum\(dims\) = 8; got shape \(9, 9\)"),
    # ---- structures --------------------------------------------------------------
    ("duplicate_block_text", lambda: Structure.parse("AB:1 BA:2"),
     ValidationError, r"blocks must be distinct; got blocks\[1\] = AB, which appears twice"),
    ("duplicate_block_ctor", lambda: Structure(2, ({0, 1}, (1, 0)), (1, 1)),
     ValidationError, r"blocks must be distinct; got blocks\[1\] = AB, which appears twice"),
    ("empty_block", lambda: Structure(2, ({0}, set()), (1, 1)),
     ValidationError, r"blocks\[1\] must be non-empty; got an empty set"),
    ("view_index_out_of_range", lambda: Structure(2, ({0, 2},), (1,)),
     ValidationError, r"blocks\[0\] must contain view indices in 0\.\.1; got view index 2, which is out of range"),
    ("negative_view_index", lambda: Structure(2, ({-1},), (1,)),
     ValidationError, r"blocks\[0\] must contain view indices in 0\.\.1; got view index -1"),
    ("view_letter_out_of_range", lambda: SchurComplement().fit(GOOD, structure="ABC:1"),
     ValidationError, r"structure uses view 'C' but there are only 2 views \(letters A-B\)"),
    ("repeated_letter", lambda: Structure.parse("AAB:1"),
     ValidationError, r"structure token 'AAB:1' must use each view letter once; got 'AAB'"),
    ("rank_zero", lambda: Structure.parse("AB:0 A:1"),
     ValidationError, r"ranks\[0\] \(block AB\) must be >= 1; got 0"),
    ("rank_negative", lambda: Structure(2, ({0},), (-2,)),
     ValidationError, r"ranks\[0\] \(block A\) must be >= 1; got -2"),
    ("rank_not_integer_text", lambda: Structure.parse("AB:1.5"),
     ValidationError, r"rank of structure token 'AB:1\.5' must be a positive integer; got '1\.5'"),
    ("rank_unicode_digit", lambda: Structure.parse("AB:\u0661"),
     ValidationError, r"rank of structure token 'AB:\u0661' must be a positive integer"),
    ("rank_float_ctor", lambda: Structure(2, ({0, 1},), (1.0,)),
     ValidationError, r"ranks\[0\] \(block AB\) must be an integer; got 1\.0"),
    ("ranks_length", lambda: Structure(2, ({0, 1},), (1, 2)),
     ValidationError, r"ranks must have one entry per block \(1\); got \(1, 2\)"),
    ("malformed_token", lambda: Structure.parse("AB3"),
     ValidationError, r"structure token 'AB3' must look like 'AB:3'"),
    ("lower_case_letters", lambda: Structure.parse("ab:1"),
     ValidationError, r"view letters must be upper case A-Z; got 'ab'"),
    ("empty_structure_text", lambda: Structure.parse("  "),
     ValidationError, r"structure must contain at least one 'LETTERS:RANK' token; got '  '"),
    ("structure_not_text", lambda: SchurComplement().fit(GOOD, structure=3),
     ValidationError, r"structure must be a Structure or a string such as 'ABC:3 AB:2 C:1'; got 3"),
    ("all_without_M", lambda: Structure.parse("all:2"),
     ValidationError, r"n_views must be given with 'all:R'"),
    ("all_subsets_too_many_views", lambda: Structure.all_subsets(9),
     ValidationError, r"n_views must be <= 8 for all_subsets \('all:R'\); got 9, .*511 blocks"),
    ("too_many_views", lambda: Structure(27, ({0},), (1,)),
     ValidationError, r"n_views must be <= 26; got 27"),
    ("structure_missing", lambda: SchurComplement().fit(GOOD),
     ValidationError, r"structure must be given to SchurComplement\.fit"),
    # ---- ranks versus dims --------------------------------------------------------
    ("block_rank_exceeds_rows", lambda: SchurComplement(noise_rule=1.0).fit(
        GOOD, structure="AB:1 A:5"),
     NotIdentifiableError, r"rank of block A must be <= d_S = 4 .*; got r_S = 5"),
    ("total_rank_exceeds_d", lambda: NaivePCA(noise_rule=1.0).fit_covariance(
        COV, dims=(4, 5), structure="AB:9 A:2"),
     NotIdentifiableError, r"total rank K must be <= d = 9; got K = 11"),
    ("d_not_above_K", lambda: SchurComplement().fit(GOOD, structure="AB:3 A:3 B:3"),
     NotIdentifiableError, r"d = 9 must exceed the total rank K = 9"),
    ("view_d_not_above_k_per_view", lambda: SchurComplement(noise_rule="per_view").fit(
        GOOD, structure="AB:2 A:2 B:1"),
     NotIdentifiableError, r"view A has d_1 = 4 <= k_1 = 4"),
    ("per_view_variant_rank_above_dm", lambda: SchurComplement(
        variant="per_view", noise_rule=1.0).fit(
        [X0[:, :2], X1], structure="AB:3"),
     NotIdentifiableError, r"rank of block AB must be <= d_m = 2 .*got r_S = 3 for view A"),
    ("random_rank_above_dm", lambda: HierarchicalFactorModel.random((1, 5), "AB:2"),
     ValidationError, r"dims\[0\] = 1 is smaller than rank 2 of block AB"),
    ("random_huge_rank_no_alloc", lambda: HierarchicalFactorModel.random(
        (3, 3), "AB:99999999999"),
     ValidationError, r"dims\[0\] = 3 is smaller than rank 99999999999 of block AB"),
    ("check_identifiable_rank", lambda: check_identifiable(
        "AB:3 A:1", dims=(1, 1)).raise_if_failed(),
     NotIdentifiableError, r"block AB has rank 3 > d_S = 2 rows"),
    # ---- noise variance -----------------------------------------------------------
    ("noise_zero", lambda: HierarchicalFactorModel.random((4, 5), S2, noise_var=0.0),
     ValidationError, r"noise_var must be > 0\.0; got 0\.0"),
    ("noise_negative_per_view", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, noise_var=[1.0, -0.5]),
     ValidationError, r"noise_var\[1\] must be > 0; got -0\.5"),
    ("noise_nan", lambda: SchurComplement(noise_rule=float("nan")),
     ValidationError, r"noise_rule must be finite; got nan"),
    ("noise_inf_per_view", lambda: MaskedGradient(noise_rule=[1.0, np.inf]),
     ValidationError, r"noise_rule must contain only finite values; got inf at index \(1,\)"),
    ("noise_wrong_length", lambda: SchurComplement(noise_rule=(1.0, 1.0, 1.0)).fit(
        GOOD, structure=S2),
     ValidationError, r"noise_rule must be a scalar or have one entry per view \(2\); got 3 entries"),
    ("noise_unknown_rule", lambda: SchurComplement(noise_rule="median"),
     ValidationError, r"noise_rule must be one of 'scalar', 'per_view'; got 'median'"),
    # ---- latent correlation -----------------------------------------------------------
    ("latent_not_psd", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, latent_cov=np.diag([1.0, -1.0, 1.0])),
     ValidationError, r"latent_cov must be positive semi-definite; got smallest eigenvalue -1"),
    ("latent_rho_too_large", lambda: HierarchicalFactorModel.random((4, 5), S2, latent_cov=1.5),
     ValidationError, r"latent_cov rho must be <= 1\.0; got 1\.5"),
    ("latent_rho_too_negative", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, latent_cov=-0.9),
     ValidationError, r"latent_cov rho must be >= -0\.5; got -0\.9"),
    ("latent_asymmetric", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, latent_cov=np.triu(np.ones((3, 3)))),
     ValidationError, r"latent_cov must be symmetric; got max \|latent_cov - latent_cov\.T\| = 1"),
    ("latent_wrong_shape", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, latent_cov=np.eye(4)),
     ValidationError, r"latent_cov must have shape \(3, 3\) \(K = total rank\); got \(4, 4\)"),
    # ---- other model / estimator arguments -----------------------------------------------
    ("loadings_outside_mask", lambda: HierarchicalFactorModel(
        (4, 5), Structure.parse("A:1", n_views=2), np.ones((9, 1)), 1.0),
     ValidationError, r"loadings must be exactly zero outside the structure mask; got 1\.0 at row 4"),
    ("singular_values_reversed", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, singular_values=(2.0, 1.0)),
     ValidationError, r"singular_values\[1\] must be >= 2\.0; got 1\.0"),
    ("legacy_random_state", lambda: HierarchicalFactorModel.random(
        (4, 5), S2, rng=np.random.RandomState(0)),
     ValidationError, r"rng must be None, an int, a SeedSequence or a numpy Generator; got a legacy RandomState"),
    ("max_iter_negative", lambda: MaskedGradient(max_iter=-1),
     ValidationError, r"max_iter must be >= 0; got -1"),
    ("tol_zero", lambda: MaskedGradient(tol=0.0),
     ValidationError, r"tol must be > 0\.0; got 0\.0"),
    ("variant_unknown", lambda: SchurComplement(variant="diag"),
     ValidationError, r"variant must be one of 'joint', 'view_diagonal', 'per_view', 'paper'; got 'diag'"),
    ("init_not_accepted", lambda: SchurComplement().fit(
        GOOD, structure=S2, init=SchurComplement().fit(GOOD, structure=S2)),
     ValidationError, r"init is not used by SchurComplement"),
    ("init_wrong_structure", lambda: MaskedGradient().fit(
        GOOD, structure=S2, init=SchurComplement().fit(GOOD, structure="AB:1")),
     ValidationError, r"init must have the same dims and structure as the fit; got dims \(4, 5\) and structure AB:1"),
    # ---- check_identifiable --------------------------------------------------------------
    ("ci_dims_missing", lambda: check_identifiable(S2),
     ValidationError, r"dims must be given when checking a structure"),
    ("ci_noise_unknown", lambda: check_identifiable(S2, dims=(4, 5), noise="iso"),
     ValidationError, r"noise must be one of 'scalar', 'per_view'; got 'iso'"),
    ("ci_structure_wrong_M", lambda: check_identifiable(Structure.parse("ABC:1"), dims=(4, 5)),
     ValidationError, r"structure has 3 views but the data have 2"),
    # ---- metrics -----------------------------------------------------------------------
    ("metric_not_a_fit", lambda: hs.metrics.block_gram_errors(None, MODEL),
     ValidationError, r"estimate must be a FitResult or HierarchicalFactorModel .*; got None"),
    ("metric_truth_not_a_fit", lambda: hs.metrics.overall_gram_error(MODEL, "truth"),
     ValidationError, r"truth must be a FitResult or HierarchicalFactorModel .*; got 'truth'"),
    ("metric_dims_mismatch", lambda: hs.metrics.structure_gram_errors(
        MODEL, HierarchicalFactorModel.random((5, 4), S2, rng=0)),
     ValidationError, r"estimate\.dims must equal truth\.dims; got \(4, 5\) and \(5, 4\)"),
    ("metric_views_mismatch", lambda: hs.metrics.rank_recovery(
        Structure.parse("AB:1"), Structure.parse("ABC:1")),
     ValidationError, r"structures must have the same number of views; got 2 and 3"),
    ("metric_structure_type", lambda: hs.metrics.support_scores("AB:1", MODEL),
     ValidationError, r"estimated must be a Structure, FitResult or HierarchicalFactorModel; got 'AB:1'"),
    ("metric_norm_unknown", lambda: hs.metrics.sin_theta(MODEL, MODEL, norm="nuc"),
     ValidationError, r"norm must be 'op' or 'fro'; got 'nuc'"),
    # ---- study config files (hcl_stats.study.load_study) -----------------------------
    ("config_malformed_toml", lambda: _load(("[scenario]", "[scenario")),
     StudyConfigError, r"bad\.toml: not valid TOML \(Expected ']' at the end of a table"),
    ("config_not_utf8", lambda: _load(binary=b"\xff\xfe\x00garbage"),
     StudyConfigError, r"bad\.toml: must be UTF-8 TOML text; got"),
    ("config_unknown_table", lambda: _load(("[grid]", "[extra]\nx = 1\n[grid]")),
     StudyConfigError, r"bad\.toml: extra must be one of the tables estimators, grid, report, scenario, study; got 'extra'"),
    ("config_unknown_study_key", lambda: _load(("seed = 1", "seed = 1\nsed = 2")),
     StudyConfigError, r"study\.sed must be one of kind, metrics, .*; got 'sed'"),
    ("config_wrong_type", lambda: _load(("replications = 2", 'replications = "2"')),
     StudyConfigError, r"study\.replications must be an integer >= 1; got '2'"),
    ("config_unknown_scenario_key", lambda: _load(("noise_var = 0.5", "noise_var = 0.5\nnoise = 1")),
     StudyConfigError, r"scenario\.noise must be a scenario key of kind 'recovery' .*; got 'noise'"),
    ("config_dims_zero", lambda: _load(("dims = [4, 5, 6]", "dims = [4, 0, 6]")),
     StudyConfigError, r"scenario\.dims must be a non-empty list of positive integers; got \[4, 0, 6\]"),
    ("config_negative_noise", lambda: _load(("noise_var = 0.5", "noise_var = -0.5")),
     StudyConfigError, r"scenario\.noise_var must be a positive number .*; got -0\.5"),
    ("config_n_samples_1", lambda: _load(("n_samples = [50]", "n_samples = [1]")),
     StudyConfigError, r"grid\.n_samples\[0\] must be an integer >= 2; got 1"),
    ("config_unknown_estimator", lambda: _load(("[estimators.naive]", '[estimators.x]\nname = "nope"\n[estimators.naive]')),
     StudyConfigError, r"estimators\.x\.name must be one of the registered estimators .*; got 'nope'"),
    ("config_unknown_hyperparameter", lambda: _load(("[estimators.naive]", "[estimators.naive]\nfoo = 1")),
     StudyConfigError, r"estimators\.naive must be hyper-parameters accepted by 'naive' .*; got \{'foo': 1\}"),
    ("config_bad_structure", lambda: _load(('structure = "all:1"', 'structure = "ABD:1"')),
     StudyConfigError, r"must be a valid structure for 3 views \(structure uses view 'D'"),
]


def _study_file(edit, binary=None):
    """Write the tiny study with one edit applied; return its path."""
    import tempfile

    from _study_helpers import TINY

    text = TINY.format(reps=2, seed=1, ns="[50]", sampler="data", extra="")
    path = Path(tempfile.mkdtemp(prefix="hcl_cfg_")) / "bad.toml"
    if binary is not None:
        path.write_bytes(binary)
    else:
        old, new = edit
        assert old in text
        path.write_text(text.replace(old, new))
    return path


def _load(edit=("", ""), binary=None):
    from hcl_stats.study import load_study

    return load_study(_study_file(edit, binary))


def _zero_row(cov, j):
    out = np.array(cov)
    out[j, :] = 0.0
    out[:, j] = 0.0
    return out


def test_catalogue_is_large_and_ids_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30


@pytest.mark.parametrize(("thunk", "error", "pattern"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_typed_error(thunk, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        thunk()
    assert isinstance(info.value, HCLError)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith((".", ")"))


# --------------------------------------------------------------- accepted inputs
def test_integer_views_are_accepted_and_equal_to_float_views():
    ints = [np.rint(3 * X0).astype(np.int32), np.rint(3 * X1).astype(np.int64)]
    floats = [x.astype(float) for x in ints]
    a = SchurComplement().fit(ints, structure=S2)
    b = SchurComplement().fit(floats, structure=S2)
    np.testing.assert_array_equal(a.loadings, b.loadings)
    assert a.noise_var == b.noise_var


def test_float32_and_float16_views_are_cast_to_float64():
    data = MultimodalData([X0.astype(np.float32), X1.astype(np.float16)])
    assert all(x.dtype == np.float64 for x in data.Xs)
    np.testing.assert_array_equal(data.Xs[0], X0.astype(np.float32).astype(np.float64))


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def cli_files(tmp_path):
    np.savez(tmp_path / "views.npz", a=X0, b=X1)
    np.savez(tmp_path / "rows.npz", a=X0, b=X1[:30])
    raw = (tmp_path / "views.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("x,y\n")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    # a header, a blank line: the bad cell is on line 6 of the file, the short row on 7
    (tmp_path / "bad_cell.csv").write_text("a,b\n1,2\n3,4\n\n5,6\n7,abc\n8\n9,9\n")
    (tmp_path / "short_row.csv").write_text("a,b\n1,2\n3,4\n\n5,6\n7,8\n8\n9,9\n")
    (tmp_path / "commented.csv").write_text("1,2,3\n# a comment\n4,5,6 # note\n7,8\n")
    (tmp_path / "nan.csv").write_text("1,2\nnan,3\n4,5\n")
    (tmp_path / "ok.csv").write_text("1,2\n3,4.5\n5,6\n7,9\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81\n\x92\n")
    (tmp_path / "a_dir.npz").mkdir()
    return tmp_path


def _cli(capsys, args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


CLI_CASES = [
    ("missing_data", ["fit", "{t}/nope.npz", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: data file must be an existing file; got '.*nope\.npz', a path that does not exist"),
    ("directory_as_data", ["fit", "{t}", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: data file must be an existing file; got '.*', a directory"),
    ("out_dir_missing", ["fit", "{t}/views.npz", "--structure", "AB:1", "--out", "{t}/no/o.npz"],
     r"ValidationError: --out directory must be an existing directory; got '.*no', a directory that does not exist"),
    ("out_parent_is_file", ["fit", "{t}/views.npz", "--structure", "AB:1", "--out", "{t}/views.npz/o.npz"],
     r"ValidationError: --out directory must be an existing directory; got '.*views\.npz', a file"),
    ("out_is_directory", ["fit", "{t}/views.npz", "--structure", "AB:1", "--out", "{t}/a_dir.npz"],
     r"ValidationError: --out must be a file path; got '.*a_dir\.npz', an existing directory"),
    ("out_unwritable", ["fit", "{t}/views.npz", "--structure", "AB:1", "--out", "/proc/hcl_out.npz"],
     r"ValidationError: --out directory must be writable; got '/proc'"),
    ("out_wrong_suffix", ["fit", "{t}/views.npz", "--structure", "AB:1", "--out", "{t}/o.txt"],
     r"ValidationError: --out must end in \.npz; got '.*o\.txt'"),
    ("truncated_npz", ["fit", "{t}/truncated.npz", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: data file '.*truncated\.npz' is not a readable \.npz"),
    ("npz_row_mismatch", ["fit", "{t}/rows.npz", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: views\[1\] has 30 rows but views\[0\] has 40"),
    ("empty_csv", ["fit", "{t}/empty.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: CSV file '.*empty\.csv' must contain at least one row of numbers"),
    ("header_only_csv", ["fit", "{t}/header_only.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: CSV file '.*header_only\.csv' must contain at least one row of numbers"),
    ("ragged_csv", ["fit", "{t}/ragged.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: CSV file '.*ragged\.csv' could not be parsed: line 2 has 2 cells but "
     r"the first data line has 3"),
    ("csv_bad_cell_line", ["fit", "{t}/bad_cell.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"could not be parsed: line 6 has the non-numeric cell 'abc'\.$"),
    ("csv_comments_are_not_data", ["fit", "{t}/commented.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"could not be parsed: line 4 has 2 cells but the first data line has 3"),
    ("h5mu_options_with_dataset", ["fit", "--dataset", "breast_cancer", "--structure", "AB:1", "--join", "inner", "--out", "{t}/o.npz"],
     r"--join, --modalities and --layer apply to an \.h5mu file only; got --dataset breast_cancer"),
    ("csv_short_row_line", ["fit", "{t}/short_row.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"could not be parsed: line 7 has 1 cells but the first data line has 2"),
    ("binary_csv", ["fit", "{t}/binary.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: CSV file '.*binary\.csv' must be UTF-8 text"),
    ("nan_csv", ["fit", "{t}/nan.csv", "{t}/ok.csv", "--structure", "AB:1", "--out", "{t}/o.npz"],
     r"ValidationError: views\[0\] must contain only finite values; got nan at index \(1, 0\)"),
    ("bad_structure", ["fit", "{t}/views.npz", "--structure", "AB:0", "--out", "{t}/o.npz"],
     r"ValidationError: ranks\[0\] \(block AB\) must be >= 1; got 0"),
    ("negative_noise", ["fit", "{t}/views.npz", "--structure", "AB:1", "--noise", "-1", "--out", "{t}/o.npz"],
     r"ValidationError: noise_rule must be > 0\.0; got -1\.0"),
    ("run_missing_config", ["run", "{t}/nope.toml", "--quiet"],
     r"nope\.toml"),
    ("run_bad_config", ["run", "{t}/ragged.csv", "--quiet"],
     r"StudyConfigError: .*ragged\.csv: not valid TOML"),
    ("ci_dims_not_numbers", ["check-identifiable", "--dims", "3,x", "--structure", "AB:1"],
     r"ValidationError: --dims must be comma-separated positive integers such as 100,500,800; got '3,x'"),
    ("ci_dims_empty_entry", ["check-identifiable", "--dims", "5,,7", "--structure", "all:1"],
     r"--dims must be comma-separated positive integers such as 100,500,800; got '5,,7'"),
    ("ci_dims_trailing_comma", ["check-identifiable", "--dims", "5,6,", "--structure", "AB:1"],
     r"--dims must be comma-separated positive integers such as 100,500,800; got '5,6,'"),
    ("ci_dims_zero", ["check-identifiable", "--dims", "3,0", "--structure", "AB:1"],
     r"ValidationError: dims\[1\] must be a positive integer; got 0"),
    ("ci_view_out_of_range", ["check-identifiable", "--dims", "3,3", "--structure", "ABC:1"],
     r"ValidationError: structure uses view 'C' but there are only 2 views"),
]


@pytest.mark.parametrize(("args", "pattern"), [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line_error(cli_files, capsys, args, pattern):
    args = [a.replace("{t}", str(cli_files)) for a in args]
    before = sorted(p.name for p in Path(cli_files).iterdir())
    code, err = _cli(capsys, args)
    assert code == 2, err
    assert re.search(pattern, err), err
    assert err.count("\n") == 1  # one line, no traceback
    # nothing written, no temporary file left behind
    assert sorted(p.name for p in Path(cli_files).iterdir()) == before


def test_cli_valid_call_still_works(cli_files, capsys):
    out = cli_files / "fit.npz"
    code, err = _cli(capsys, ["fit", cli_files / "views.npz", "--structure", S2,
                              "--estimator", "schur", "--out", out])
    assert code == 0, err
    with np.load(out) as npz:
        assert np.all(np.isfinite(npz["loadings"]))


# ------------------------------------------------------------------- fuzzing
_PACKAGE_WARNINGS = (NumericalWarning, ConvergenceWarning)
#: Multiplies the fuzzers' example counts (e.g. HCL_FUZZ_SCALE=20 for a long run).
_SCALE = max(1, int(os.environ.get("HCL_FUZZ_SCALE", "1")))


def _outcome(fn, *args, **kwargs):
    """Return the result, or the package error raised (anything else propagates)."""
    try:
        return fn(*args, **kwargs)
    except HCLError as exc:
        return exc


def _assert_finite_result(result):
    assert np.all(np.isfinite(result.loadings))
    assert np.all(np.isfinite(result.noise_var))
    assert np.all(np.asarray(result.noise_var) > 0)


@settings(max_examples=300 * _SCALE)
@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet="ABCDEFGZabc:0123456789-+_., \t\n\u0661all"),
        st.lists(
            st.tuples(st.text("ABCDEFG", min_size=0, max_size=4),
                      st.integers(-3, 12)),
            max_size=6,
        ).map(lambda toks: " ".join(f"{a}:{r}" for a, r in toks)),
    ),
    n_views=st.one_of(st.none(), st.integers(-2, 30)),
)
def test_fuzz_structure_parser(text, n_views):
    s = _outcome(Structure.parse, text, n_views=n_views)
    if isinstance(s, Exception):
        assert isinstance(s, ValidationError)
        assert str(s).strip()
        return
    # a parsed structure is valid and round-trips through its text form
    assert s.total_rank >= len(s.blocks) >= 1
    assert Structure.parse(str(s), n_views=s.n_views) == s


_any_dtype = st.one_of(
    hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
    hnp.complex_number_dtypes(), hnp.boolean_dtypes(),
    hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3),
    hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
)


@settings(max_examples=300 * _SCALE)
@given(arr=hnp.arrays(_any_dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
       ndim=st.sampled_from([None, 1, 2]))
def test_fuzz_check_float_array(arr, ndim):
    out = _outcome(check_float_array, arr, "x", ndim=ndim)
    if isinstance(out, Exception):
        assert isinstance(out, ValidationError)
        assert str(out).startswith("x")
        return
    assert out.dtype == np.float64
    assert np.all(np.isfinite(out))
    assert ndim is None or out.ndim == ndim


_elements = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150 * _SCALE)
@given(
    a=hnp.arrays(np.float64, st.tuples(st.integers(2, 9), st.integers(1, 4)), elements=_elements),
    b_cols=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 1e-150, 1e-6, 1e6, 1e150]),
    text=st.sampled_from(["AB:1", "AB:1 A:1 B:1", "all:1", "A:1 B:1", "AB:2 A:1"]),
    est=st.sampled_from([SchurComplement(), SchurComplement(noise_rule="per_view"),
                         NaivePCA(), MaskedGradient(max_iter=50),
                         MaskedGradient(noise_rule="per_view", max_iter=50)]),
)
def test_fuzz_fit_arbitrary_views(a, b_cols, seed, scale, text, est):
    b = np.random.default_rng(seed).standard_normal((a.shape[0], b_cols)) * scale
    with warnings.catch_warnings():
        for cat in _PACKAGE_WARNINGS:
            warnings.simplefilter("ignore", cat)
        try:
            result = est.fit([a, b], structure=text)
        except HCLError:
            return
    _assert_finite_result(result)


@settings(max_examples=150 * _SCALE)
@given(
    a=hnp.arrays(np.float64, (6, 6), elements=_elements),
    kind=st.sampled_from(["raw", "sym", "gram"]),
    text=st.sampled_from(["AB:1", "AB:1 A:1 B:1", "A:1 B:1"]),
    n=st.one_of(st.none(), st.integers(-1, 10)),
    est=st.sampled_from([SchurComplement(), NaivePCA(noise_rule="per_view"),
                         MaskedGradient(max_iter=50)]),
)
def test_fuzz_fit_covariance_arbitrary_matrices(a, kind, text, n, est):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # building the test matrix may overflow; that is the input, not the package
        mat = {"raw": a, "sym": a + a.T, "gram": a @ a.T}[kind]
    with warnings.catch_warnings():
        for cat in _PACKAGE_WARNINGS:
            warnings.simplefilter("ignore", cat)
        try:
            result = est.fit_covariance(mat, dims=(3, 3), n_samples=n, structure=text)
        except HCLError:
            return
    _assert_finite_result(result)


@settings(max_examples=100 * _SCALE)
@given(a=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=_elements))
def test_fuzz_check_covariance(a):
    out = _outcome(check_covariance, a, "cov")
    if isinstance(out, Exception):
        assert isinstance(out, ValidationError)
        assert str(out).startswith("cov")
        return
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, out.T)


def test_regression_extreme_view_scale_ratio_is_a_package_warning_only():
    # found by the long fuzz run: variances 1e-302 vs 1e7 overflowed a numpy division
    a = np.array([[0.0, 1.0], [1.0, 9175.0], [1.0, 1.0]])
    b = np.random.default_rng(1).standard_normal((3, 1)) * 1e-150
    with pytest.warns(NumericalWarning, match=r"differ by a factor inf"):
        fit = SchurComplement().fit([a, b], structure="AB:1")
    _assert_finite_result(fit)


def test_regression_max_double_entries_are_a_validation_error():
    # found by the long fuzz run: np.ptp overflowed on +-1.8e308 before the check
    with pytest.raises(ValidationError, match=r"views\[0\] must have entries of magnitude < .*; got 1\.8e\+308"):
        SchurComplement().fit([np.array([[1.79769313e308], [-9.97920155e291]]), X1[:2]],
                              structure="AB:1")


def test_regression_refinement_at_1e53_does_not_overflow():
    # found by the long fuzz run: the quartic line search of MaskedGradient formed
    # sixth powers of the data scale (cov ~ 1e53) and overflowed
    a = np.full((6, 6), 1.68072518e26)
    a[0, 0] = a[1, 1] = a[3, 2] = 0.0
    with warnings.catch_warnings():
        for cat in _PACKAGE_WARNINGS:
            warnings.simplefilter("ignore", cat)
        fit = MaskedGradient(max_iter=50).fit_covariance(
            a @ a.T, dims=(3, 3), structure="AB:1 A:1 B:1")
    _assert_finite_result(fit)
    assert fit.diagnostics.extra["magnitude_exponent"] % 2 == 0


def test_entries_beyond_1e154_fail_cleanly_without_a_numpy_overflow_warning(tmp_path, capsys):
    """The scale check squared deviations first and printed numpy's 'overflow
    encountered in multiply' before the clean error."""
    from hcl_stats.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "huge.npz", rng.standard_normal((50, 3)) * 1e200,
             rng.standard_normal((50, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code = main(["fit", str(tmp_path / "huge.npz"), "--structure", "AB:1",
                     "--out", str(tmp_path / "o.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert "views[0] must have entries of magnitude <" in err
    assert "overflow" not in err
