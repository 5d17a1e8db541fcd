import numpy as np
import pytest

import hcl_stats as hs


@pytest.fixture(scope="module")
def fit():
    model = hs.HierarchicalFactorModel.random((4, 5), "AB:2 A:1 B:1", noise_var=0.5, rng=0)
    return model, hs.estimators.MaskedGradient().fit(model.sample(200, rng=1), structure=model.structure)


def test_summary_renders_in_all_formats(fit):
    _, res = fit
    summ = res.summary()
    text = str(summ)
    assert "AB:2 A:1 B:1" in text
    assert "Relative gradient" in text
    md = summ.to_markdown()
    assert "| Block | Level | Rank | share A | share B |" in md
    tex = summ.to_latex()
    assert "\\toprule" in tex
    assert "\\bottomrule" in tex
    assert "<table>" in summ._repr_html_()
    # shares of each view's signal variance sum to one
    shares = np.array([[np.nan if v is None else v for v in row[3:]] for row in summ.rows], dtype=float)
    np.testing.assert_allclose(np.nansum(shares, axis=0), 1.0)


def test_aligned_to_returns_a_new_rotated_result(fit):
    model, res = fit
    aligned = res.aligned_to(model)
    assert aligned is not res
    for b in model.structure.blocks:
        np.testing.assert_allclose(aligned.gram(b), res.gram(b), atol=1e-12)
    before = hs.metrics.procrustes_errors(res, model)
    direct = {b: float(np.linalg.norm(aligned.loadings[:, model.structure.columns(b)] - model.loadings[:, model.structure.columns(b)])) for b in model.structure.blocks}
    for b in before:
        assert direct[b] == pytest.approx(before[b], rel=1e-10)


def test_record_is_json_safe(fit):
    import json

    _, res = fit
    rec = res.to_record()
    assert json.loads(json.dumps(rec))["structure"] == "AB:2 A:1 B:1"
    assert rec["converged"] is True
