"""MuData input: modalities as views, rows aligned on the observation names."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats.datasets import from_mudata
from hcl_stats.exceptions import ValidationError

mudata = pytest.importorskip("mudata")
anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")
sp = pytest.importorskip("scipy.sparse")


def _mdata(xs, names=("rna", "prot"), obs_orders=None, labels=None):
    n = xs[0].shape[0]
    ids = [f"cell{i}" for i in range(n)]
    mods = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata/mudata deprecation chatter
        for k, (name, x) in enumerate(zip(names, xs, strict=True)):
            order = np.arange(n) if obs_orders is None else obs_orders[k]
            obs = pd.DataFrame(index=pd.Index([ids[i] for i in order], dtype=object))
            var = pd.DataFrame(index=pd.Index([f"{name}{j}" for j in range(x.shape[1])],
                                              dtype=object))
            mods[name] = anndata.AnnData(x[order], obs=obs, var=var)
        md = mudata.MuData(mods)
        if labels is not None:
            md.obs["group"] = pd.Series(labels, index=ids).loc[md.obs_names].to_numpy()
    return md, ids


def test_modalities_become_views_with_rows_aligned_by_obs_names(rng):
    x1, x2 = rng.standard_normal((12, 3)), rng.standard_normal((12, 5))
    perm = rng.permutation(12)
    md, ids = _mdata([x1, x2], obs_orders=[np.arange(12), perm],
                     labels=np.array(["a", "b"] * 6))
    ds = from_mudata(md, label_key="group")
    assert ds.view_names == ("rna", "prot")
    assert ds.dims == (3, 5)
    # the second modality was stored shuffled: alignment restores the sample order
    order = [ids.index(s) for s in ds.sample_ids]
    np.testing.assert_array_equal(ds.data.Xs[0], x1[order])
    np.testing.assert_array_equal(ds.data.Xs[1], x2[order])
    assert ds.label_names == ("a", "b")
    np.testing.assert_array_equal(ds.labels, np.array([0, 1] * 6)[order])


def test_sparse_modalities_and_layers_are_read(rng):
    x1 = rng.standard_normal((10, 4))
    x2 = sp.random(10, 30, density=0.4, random_state=3, format="csr")
    md, _ = _mdata([x1, x2.toarray()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md.mod["prot"].X = x2
        md.mod["rna"].layers["log"] = np.log1p(np.abs(x1))
        md.mod["prot"].layers["log"] = x2.log1p()
    np.testing.assert_array_equal(from_mudata(md).data.Xs[1], x2.toarray())
    ds = from_mudata(md, layer="log", modalities=["prot", "rna"])
    assert ds.view_names == ("prot", "rna")
    np.testing.assert_allclose(ds.data.Xs[0], x2.log1p().toarray())


def test_misaligned_observations_are_refused_or_intersected(rng):
    x1, x2 = rng.standard_normal((8, 2)), rng.standard_normal((8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mods = {
            "a": anndata.AnnData(x1, obs=pd.DataFrame(index=[f"s{i}" for i in range(8)])),
            "b": anndata.AnnData(x2, obs=pd.DataFrame(index=[f"s{i}" for i in range(2, 10)])),
        }
        md = mudata.MuData(mods)
    with pytest.raises(ValidationError, match="modality 'a' must have exactly the obs"):
        from_mudata(md)
    ds = from_mudata(md, join="inner")
    assert ds.sample_ids == tuple(f"s{i}" for i in range(2, 8))
    np.testing.assert_array_equal(ds.data.Xs[0], x1[2:8])
    np.testing.assert_array_equal(ds.data.Xs[1], x2[:6])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modalities": ["rna", "nope"]}, "modalities must be names"),
        ({"modalities": ["rna", "rna"]}, "modalities must be distinct"),
        ({"layer": "counts"}, "layer 'counts' must be a layer of modality 'rna'"),
        ({"label_key": "cell_type"}, "label_key must be a column"),
        ({"join": "outer"}, "join must be 'exact' or 'inner'"),
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs, match, rng):
    md, _ = _mdata([rng.standard_normal((6, 2)), rng.standard_normal((6, 3))])
    with pytest.raises(ValidationError, match=match):
        from_mudata(md, **kwargs)


def test_not_a_mudata_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="must be a mudata.MuData"):
        from_mudata({"rna": np.ones((3, 2))})
    with pytest.raises(ValidationError, match="does not exist"):
        from_mudata(tmp_path / "missing.h5mu")
    bad = tmp_path / "bad.h5mu"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValidationError, match="not a readable .h5mu"):
        from_mudata(bad)


# reading the file is under test, not the signal: a tiny draw may shrink a block
# to zero (BlockDroppedWarning), which filterwarnings=error would turn into exit 1
@pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.BlockDroppedWarning")
def _write(md, path):
    settings = getattr(anndata, "settings", None)
    old = getattr(settings, "allow_write_nullable_strings", None)
    try:  # pandas >= 3 string indexes need this opt-in on anndata >= 0.11
        if old is not None:
            settings.allow_write_nullable_strings = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            md.write(str(path))
    finally:
        if old is not None:
            settings.allow_write_nullable_strings = old


def test_cli_join_modalities_and_layer_options(tmp_path, rng, capsys):
    """The CLI offers what the alignment error advises (--join inner), and picks
    modalities and a layer like from_mudata's arguments."""
    from hcl_stats.cli import main

    x1, x2, x3 = (rng.standard_normal((12, k)) for k in (3, 4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        def mod(name, x, first):
            return anndata.AnnData(
                x, obs=pd.DataFrame(index=[f"s{i}" for i in range(first, first + 12)]),
                var=pd.DataFrame(index=[f"{name}{j}" for j in range(x.shape[1])]))

        mods = {"a": mod("a", x1, 0), "b": mod("b", x2, 2), "c": mod("c", x3, 0)}
        mods["c"].layers["counts"] = 2.0 * x3
        md = mudata.MuData(mods)
    path = tmp_path / "m.h5mu"
    _write(md, path)
    out = tmp_path / "fit.npz"
    base = ["fit", str(path), "--structure", "AB:1", "--out", str(out)]
    assert main(base) == 2
    assert "(hcl-stats fit --join inner)" in capsys.readouterr().err
    assert main([*base, "--join", "inner", "--modalities", "a,c"]) == 0  # share s0..s11
    with np.load(out) as res:
        assert list(res["view_names"]) == ["a", "c"]
    capsys.readouterr()
    assert main([*base, "--join", "inner", "--modalities", "c,a", "--layer", "counts"]) == 2
    assert "layer 'counts'" in capsys.readouterr().err
    assert main([*base, "--join", "inner", "--modalities", "b,a"]) == 0
    with np.load(out) as res:
        assert list(res["view_names"]) == ["b", "a"]
        direct = hs.estimators.MaskedShrink().fit([x2[:10], x1[2:12]], structure="AB:1")
        np.testing.assert_allclose(res["gram_AB"], direct.gram(frozenset({0, 1})),
                                   rtol=1e-10, atol=1e-12)
    csv = tmp_path / "v.csv"
    np.savetxt(csv, x1, delimiter=",")
    assert main(["fit", str(csv), str(csv), "--structure", "AB:1", "--join", "inner",
                 "--out", str(out)]) == 2
    assert "apply to an .h5mu file only" in capsys.readouterr().err


def test_cli_fits_an_h5mu_file(tmp_path, rng, capsys):
    model = hs.HierarchicalFactorModel.random((6, 40), "AB:1 B:1", rng=rng)
    data = model.sample(30, rng=rng)
    md, _ = _mdata(list(data.Xs))
    path = tmp_path / "data.h5mu"
    _write(md, path)
    out = tmp_path / "fit.npz"
    from hcl_stats.cli import main

    assert main(["fit", str(path), "--structure", "AB:1 B:1", "--out", str(out)]) == 0
    with np.load(out) as res:
        assert list(res["view_names"]) == ["rna", "prot"]
        direct = hs.estimators.MaskedShrink().fit(data, structure="AB:1 B:1")
        np.testing.assert_allclose(res["gram_AB"], direct.gram(frozenset({0, 1})),
                                   rtol=1e-10, atol=1e-12)
