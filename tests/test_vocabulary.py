"""One vocabulary: views (``n_views``, ``view_names``) and ``noise_rule``.

Each older spelling still works, gives the same object as the new one, and
emits a DeprecationWarning naming its replacement.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats import estimators
from hcl_stats.estimators.rank_counting import select_structure
from hcl_stats.exceptions import ValidationError
from hcl_stats.missing import IncompleteData
from hcl_stats.model import MultimodalData
from hcl_stats.study.config import load_study
from hcl_stats.study.registry import canonical_json
from hcl_stats.workflow import fit_views

NAMES = ("rna", "atac", "prot")


def _deprecated(old, new):
    return pytest.warns(DeprecationWarning, match=rf"^{old} is deprecated; use {new}\.$")


def test_structure_keyword_aliases_give_the_same_structure():
    new = hs.Structure.parse("AB:1 C:2", n_views=3, view_names=NAMES)
    with _deprecated("n_modalities", "n_views"):
        assert hs.Structure.parse("AB:1 C:2", n_modalities=3, view_names=NAMES) == new
    with _deprecated("modality_names", "view_names"):
        assert hs.Structure.parse("AB:1 C:2", modality_names=NAMES) == new
    with _deprecated("n_modalities", "n_views"):
        assert hs.Structure(n_modalities=3, blocks=new.blocks, ranks=new.ranks,
                            view_names=NAMES) == new
    with _deprecated("modality_names", "view_names"):
        assert hs.Structure(3, new.blocks, new.ranks, modality_names=NAMES) == new
    with _deprecated("modality_names", "view_names"):
        assert hs.Structure.all_subsets(2, modality_names=NAMES[:2]).view_names == NAMES[:2]
    with _deprecated("modality_names", "view_names"):
        assert hs.Structure.coerce("AB:1 C:2", 3, modality_names=NAMES) == new


def test_structure_attribute_aliases():
    s = hs.Structure.parse("AB:1 C:2", view_names=NAMES)
    assert (s.n_views, s.view_names) == (3, NAMES)
    with _deprecated("n_modalities", "n_views"):
        assert s.n_modalities == 3
    with _deprecated("modality_names", "view_names"):
        assert s.modality_names == NAMES
    assert eval(repr(s).replace("Structure", "hs.Structure", 1)) == s.with_names(None)


def test_new_and_old_keyword_together_is_an_error():
    with pytest.raises(ValidationError, match="give n_views or its older spelling n_modalities"):
        hs.Structure.parse("AB:1", n_views=2, n_modalities=2)


def test_data_aliases(rng):
    views = [rng.standard_normal((5, d)) for d in (2, 3, 1)]
    data = MultimodalData(views, view_names=NAMES)
    assert (data.n_views, data.view_names) == (3, NAMES)
    with _deprecated("modality_names", "view_names"):
        assert MultimodalData(views, modality_names=NAMES).view_names == NAMES
    with _deprecated("n_modalities", "n_views"):
        assert data.n_modalities == 3
    with _deprecated("modality_names", "view_names"):
        assert data.modality_names == NAMES
    with _deprecated("modality_names", "view_names"):
        assert IncompleteData(views, modality_names=NAMES).view_names == NAMES


def test_model_and_fit_aliases():
    model = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    fit = estimators.SchurComplement(noise_rule=1.0).fit_covariance(
        model.covariance(), dims=model.dims, structure=model.structure)
    for obj in (model, fit):
        with _deprecated("n_modalities", "n_views"):
            assert obj.n_modalities == obj.n_views == 2


@pytest.mark.parametrize("name", ["schur", "masked_gradient", "naive"])
def test_estimator_noise_var_is_the_old_spelling_of_noise_rule(name):
    cls = estimators.get(name)
    with _deprecated("noise_var", "noise_rule"):
        old = cls(noise_var="per_view")
    assert old == cls(noise_rule="per_view")
    with _deprecated("noise_var", "noise_rule"):
        assert old.noise_var == "per_view"
    assert dataclasses.replace(old, noise_rule=2.0).noise_rule == 2.0
    with pytest.raises(ValidationError, match="give noise_rule or its older spelling noise_var"):
        cls(noise_rule="scalar", noise_var="per_view")


def test_select_structure_and_fit_views_aliases():
    model = hs.HierarchicalFactorModel.random((6, 7, 8), "ABC:2 AB:1 C:1", rng=0)
    kw = dict(cov=model.covariance(), dims=model.dims, n_per_block=10**12)
    new = select_structure(**kw, noise_rule=[1.0, 1.0, 1.0], view_names=NAMES)
    with _deprecated("noise_var", "noise_rule"):
        old = select_structure(**kw, noise_var=[1.0, 1.0, 1.0], view_names=NAMES)
    assert old.structure == new.structure
    with _deprecated("modality_names", "view_names"):
        old = select_structure(**kw, noise_rule=[1.0, 1.0, 1.0], modality_names=NAMES)
    assert old.structure == new.structure
    data = model.sample(2000, rng=np.random.default_rng(0))
    with _deprecated("noise_var", "noise_rule"):
        old = fit_views(data, structure=model.structure, noise_var="scalar")
    new = fit_views(data, structure=model.structure, noise_rule="scalar")
    np.testing.assert_array_equal(old.fit.loadings, new.fit.loadings)


def test_study_toml_noise_var_key_is_read_as_noise_rule(tmp_path: Path):
    text = (
        '[study]\nname = "alias"\nquestion = "q"\nreplications = 1\nseed = 1\n'
        '[scenario]\ndims = [4, 5]\nstructure = "all:1"\nnoise_var = 0.5\n'
        "[grid]\nn_samples = [50]\n[estimators.schur]\n"
    )
    new = tmp_path / "new.toml"
    new.write_text(text + 'noise_rule = "per_view"\n')
    old = tmp_path / "old.toml"
    old.write_text(text + 'noise_var = "per_view"\n')
    with pytest.warns(FutureWarning, match="estimators.schur.noise_var is deprecated; use "
                      r"estimators\.schur\.noise_rule"):
        o = load_study(old)
    n = load_study(new)
    assert o.estimators["schur"].params == n.estimators["schur"].params == {"noise_rule": "per_view"}
    # the digest keeps the pre-rename key, so stores written before it stay valid
    assert o.digest == n.digest
    assert n.estimators["schur"].digest == estimators_digest("schur", {"noise_var": "per_view"})


def estimators_digest(name, params):
    return hashlib.sha256(canonical_json({"name": name, "params": params}).encode()).hexdigest()
