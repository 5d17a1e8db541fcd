"""Study configs: validation messages, grid expansion, cell keys, seeding, registries."""

from __future__ import annotations

import numpy as np
import pytest
from _study_helpers import write_tiny

from hcl_stats.exceptions import StudyConfigError
from hcl_stats.study import (
    STREAM_DATA,
    Draw,
    Task,
    get_metric,
    load_study,
    register_metric,
    register_task,
    unit_rng,
)


def test_quick_config_loads():
    study = load_study("simulations/quick.toml")
    assert study.name == "quick"
    assert study.grid == ("n_samples",)
    assert [c.factors["n_samples"] for c in study.cells] == [500, 1000, 2000, 4000, 8000]
    assert list(study.estimators) == ["naive", "schur", "schur_per_view", "masked_gradient"]
    assert study.estimators["schur_per_view"].name == "schur"
    assert study.estimators["schur_per_view"].params == {"variant": "per_view"}


def test_zip_and_product_expansion(tmp_path):
    extra = ""
    cfg = write_tiny(tmp_path, ns="[50, 100]", extra=extra)
    text = cfg.read_text().replace(
        "[estimators.naive]",
        "[[grid.zip]]\nnoise_var = [0.5, 1.0, 2.0]\nsingular_values = [[0.5, 1.5], [1.0, 2.0], "
        "[2.0, 3.0]]\n\n[estimators.naive]",
    )
    cfg.write_text(text)
    study = load_study(cfg)
    assert len(study.cells) == 6
    assert study.grid == ("n_samples", "noise_var", "singular_values")
    pairs = {(c.factors["noise_var"], tuple(c.factors["singular_values"])) for c in study.cells}
    assert pairs == {(0.5, (0.5, 1.5)), (1.0, (1.0, 2.0)), (2.0, (2.0, 3.0))}
    # product order: first factor slowest
    assert [c.factors["n_samples"] for c in study.cells] == [50, 50, 50, 100, 100, 100]


def test_cell_ids_depend_only_on_data_generating_factors(tmp_path):
    a = load_study(write_tiny(tmp_path / "a", ns="[50, 200]"))
    b = load_study(write_tiny(tmp_path / "b", ns="[200, 50]", extra="[estimators.other]\nname = 'naive'"))
    ids_a = {c.factors["n_samples"]: c.id for c in a.cells}
    ids_b = {c.factors["n_samples"]: c.id for c in b.cells}
    assert ids_a == ids_b  # order of values and the estimator set do not matter
    c = load_study(write_tiny(tmp_path / "c", ns="[50, 200]", sampler="wishart"))
    assert {x.id for x in c.cells}.isdisjoint(ids_a.values())
    assert a.digest != b.digest
    assert all(len(cell.key) == 4 and all(0 <= k < 2**32 for k in cell.key) for cell in a.cells)


def test_unit_streams_are_independent_and_reproducible(tmp_path):
    study = load_study(write_tiny(tmp_path))
    cell = study.cells[0]
    d1 = study.generate(cell, 0)
    d2 = study.generate(cell, 0)
    d3 = study.generate(cell, 1)
    np.testing.assert_array_equal(d1.data.stacked, d2.data.stacked)
    np.testing.assert_array_equal(d1.truth.loadings, d2.truth.loadings)
    assert not np.array_equal(d1.truth.loadings, d3.truth.loadings)
    a = unit_rng(study.seed, cell.key, 0, STREAM_DATA).standard_normal(3)
    b = unit_rng(study.seed, cell.key, 1, STREAM_DATA).standard_normal(3)
    assert not np.array_equal(a, b)


def test_model_per_cell_keeps_the_truth_across_replicates(tmp_path):
    cfg = write_tiny(tmp_path)
    cfg.write_text(cfg.read_text().replace('noise_var = 0.5', 'noise_var = 0.5\nmodel = "per_cell"'))
    study = load_study(cfg)
    d0, d1 = study.generate(study.cells[0], 0), study.generate(study.cells[0], 1)
    np.testing.assert_array_equal(d0.truth.loadings, d1.truth.loadings)
    assert not np.array_equal(d0.data.stacked, d1.data.stacked)


@pytest.mark.parametrize(
    ("old", "new", "pieces"),
    [
        ("replications = 3", "replications = 0", ["study.replications", "0", ">= 1"]),
        ('sampler = "data"', 'sampler = "magic"', ["study.sampler", "'magic'", "one of"]),
        ("n_samples = [50, 200]", "n_samples = [50, -5]", ["grid.n_samples[1]", "-5", "integer >= 2"]),
        ("dims = [4, 5, 6]", "dims = [4, 0, 6]", ["scenario.dims", "[4, 0, 6]", "positive integers"]),
        ('structure = "all:1"', 'structure = "all:5"', ["cell 0", "exceeds d_1 = 4"]),
        ("[estimators.naive]", "[estimators.naive]\nbogus = 1", ["estimators.naive", "bogus", "hyper-parameters"]),
        ('"converged"]', '"converged", "nope"]', ["study.metrics[5]", "'nope'", "one of"]),
        ("[scenario]", "[scenario]\ncolour = 1", ["scenario.colour", "scenario key"]),
        (
            "[estimators.naive]",
            "[[grid.zip]]\nnoise_var = [1.0, 2.0]\nlatent_cov = [0.1]\n[estimators.naive]",
            ["grid.zip[0]", "equal length"],
        ),
        ("[estimators.naive]", "[estimators.naive]\nname = 'nonesuch'", ["estimators.naive.name", "'nonesuch'"]),
    ],
)
def test_validation_errors_name_file_key_value_rule(tmp_path, old, new, pieces):
    cfg = write_tiny(tmp_path)
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    with pytest.raises(StudyConfigError) as info:
        load_study(cfg)
    msg = str(info.value)
    assert msg.startswith(str(cfg))
    for piece in pieces:
        assert piece in msg, (piece, msg)


def test_bad_toml_and_missing_required(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[study\n")
    with pytest.raises(StudyConfigError, match="not valid TOML"):
        load_study(cfg)
    cfg = write_tiny(tmp_path)
    cfg.write_text(cfg.read_text().replace('dims = [4, 5, 6]\n', ""))
    with pytest.raises(StudyConfigError, match=r"scenario\.dims must be given"):
        load_study(cfg)


def test_custom_task_and_metric_plug_in_without_runner_changes(tmp_path):
    """A new kind of study registers a task and a metric; the runner is untouched."""
    from hcl_stats.study.runner import run_study
    from hcl_stats.study.store import ResultStore

    def normalize(key, value):
        if key == "scale" and isinstance(value, float) and value > 0:
            return value
        raise ValueError("a positive float")

    def generate(factors, rep_rng, sampler):
        from hcl_stats import HierarchicalFactorModel

        model = HierarchicalFactorModel.random((3, 3), "all:1", rng=rep_rng(0))
        cov = model.covariance() * factors["scale"]
        return Draw(model, model.dims, model.structure, 100, cov=cov, extra={"scale": factors["scale"]})

    register_task(Task("toy_scaled", {"scale": 1.0}, normalize, generate, samplers=("wishart", "data")))
    register_metric("toy_scale", lambda fit, truth, ctx: {"x": ctx.draw.extra["scale"]})
    assert get_metric("toy_scale").name == "toy_scale"
    cfg = tmp_path / "toy.toml"
    cfg.write_text(
        '[study]\nquestion = "q"\nkind = "toy_scaled"\nreplications = 2\n'
        'sampler = "data"\nmetrics = ["toy_scale", "overall_gram"]\n'
        "[grid]\nscale = [1.0, 2.0]\n[estimators.schur]\n"
    )
    study = load_study(cfg)
    with ResultStore(tmp_path / "toy.sqlite") as store:
        report = run_study(study, store, backend="serial", quiet=True)
        assert report.written_units == 4
        assert report.failed_units == 0
        xs = sorted(v for (v,) in store.query("SELECT value FROM results WHERE metric='toy_scale'"))
        assert xs == [1.0, 1.0, 2.0, 2.0]


def test_wishart_sampler_draws_a_covariance_and_refuses_data_estimators(tmp_path):
    study = load_study(write_tiny(tmp_path / "w", sampler="wishart"))
    draw = study.generate(study.cells[1], 0)
    assert draw.data is None
    assert draw.cov.shape == (15, 15)
    np.testing.assert_allclose(draw.cov, draw.cov.T)
    assert np.all(np.linalg.eigvalsh(draw.cov) > 0)
    from hcl_stats import estimators

    needy = [n for n in estimators.available() if estimators.get(n).needs_data]
    if not needy:
        pytest.skip("no registered estimator needs the raw rows")
    cfg = write_tiny(tmp_path / "n", sampler="wishart", extra=f"[estimators.needy]\nname = '{needy[0]}'")
    with pytest.raises(StudyConfigError, match=r"study\.sampler must be 'data' because estimator 'needy'"):
        load_study(cfg)


def test_where_accepts_list_valued_factors(tmp_path):
    from hcl_stats.study.runner import plan

    cfg = write_tiny(tmp_path, ns="[50]")
    cfg.write_text(cfg.read_text().replace("[estimators.naive]", "[[grid.zip]]\ndims = [[4, 5, 6], [6, 6, 6]]\n[estimators.naive]"))
    study = load_study(cfg)
    items, _ = plan(study, where=["dims=[6, 6, 6]"])
    assert {study.cells[i.cell_index].factors["dims"] == [6, 6, 6] for i in items} == {True}
    assert len(items) == study.replications
