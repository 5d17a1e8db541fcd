"""The hierarchical multi-view factor model and the multi-view data container.

Model (paper.md §1.2): for views ``m = 1..M``,

    x_m = sum_{S contains m} W_m^S z_S + eps_m,   z ~ N(0, I_K),   eps_m ~ N(0, sigma_m^2 I),

so that ``Sigma = W Cov(z) W^T + Psi`` with ``W`` of shape ``(d, K)``, exactly zero
outside the structure mask, and ``Psi = diag(sigma_m^2 I_{d_m})``.
"""

from __future__ import annotations

import numbers
import string
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._linalg import block_offsets
from ._validation import (
    as_generator,
    check_dims,
    check_float_array,
    check_int,
    check_memory,
    check_real,
    check_views,
    keyword_alias,
    short_repr,
    warn_renamed,
)
from .exceptions import ValidationError
from .structure import Structure, format_block

__all__ = [
    "HierarchicalFactorModel",
    "LoadingsAccess",
    "MultimodalData",
    "ViewsShape",
    "check_noise_var",
    "equicorrelation",
    "noise_diagonal",
]


#: View letters of the text form of a block (as in :mod:`hcl_stats.structure`).
_VIEW_LETTERS = string.ascii_uppercase


def _readonly(a: NDArray) -> NDArray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def check_noise_var(
    noise_var: Any, n_views: int, *, name: str = "noise_var"
) -> float | NDArray[np.float64]:
    """Validate a noise variance: a positive scalar or one positive value per view.

    Examples
    --------
    >>> from hcl_stats.model import check_noise_var
    >>> check_noise_var(0.5, 3), check_noise_var([0.5, 2.0], 2).tolist()
    (0.5, [0.5, 2.0])
    >>> check_noise_var(-1.0, 2)
    Traceback (most recent call last):
        ...
    hcl_stats.exceptions.ValidationError: noise_var must be > 0.0; got -1.0.
    """
    if np.ndim(noise_var) == 0:
        return check_real(noise_var, name, low=0.0, low_open=True)
    arr = check_float_array(noise_var, name, ndim=1)
    if arr.shape[0] != n_views:
        raise ValidationError(
            f"{name} must be a scalar or have one entry per view ({n_views}); "
            f"got {arr.shape[0]} entries."
        )
    if np.any(arr <= 0):
        i = int(np.argmax(arr <= 0))
        raise ValidationError(f"{name}[{i}] must be > 0; got {float(arr[i])!r}.")
    return _readonly(arr)


def noise_diagonal(noise_var: float | NDArray, dims: Sequence[int]) -> NDArray:
    """Diagonal of ``Psi`` (length ``d``) from a scalar or per-view noise variance.

    Examples
    --------
    >>> from hcl_stats.model import noise_diagonal
    >>> noise_diagonal([1.0, 2.0], (2, 3)).tolist()
    [1.0, 1.0, 2.0, 2.0, 2.0]
    """
    if np.ndim(noise_var) == 0:
        return np.full(int(sum(dims)), float(noise_var))
    return np.repeat(np.asarray(noise_var, dtype=float), dims)


def equicorrelation(rho: float, k: int) -> NDArray[np.float64]:
    """Equicorrelation matrix ``(1 - rho) I_k + rho 1 1^T``.

    Parameters
    ----------
    rho : float
        Common correlation, in ``[-1/(k-1), 1]`` so that the matrix is PSD.
    k : int
        Size.

    Returns
    -------
    ndarray of shape (k, k)

    Examples
    --------
    The eigenvalues are ``1 - rho`` (``k - 1`` times) and ``1 + (k - 1) rho``:

    >>> import numpy as np
    >>> from hcl_stats.model import equicorrelation
    >>> np.linalg.eigvalsh(equicorrelation(0.5, 3)).round(6).tolist()
    [0.5, 0.5, 2.0]
    """
    k = check_int(k, "k", minimum=1)
    low = -1.0 / (k - 1) if k > 1 else -1.0
    rho = check_real(rho, "rho", low=low, high=1.0)
    return (1.0 - rho) * np.eye(k) + rho * np.ones((k, k))


def _check_latent_cov(latent_cov: Any, k: int) -> NDArray | None:
    if latent_cov is None:
        return None
    if np.ndim(latent_cov) == 0:
        low = -1.0 / (k - 1) if k > 1 else -1.0
        rho = check_real(latent_cov, "latent_cov rho", low=low, high=1.0)
        return _readonly(equicorrelation(rho, k))
    arr = check_float_array(latent_cov, "latent_cov", ndim=2)
    if arr.shape != (k, k):
        raise ValidationError(
            f"latent_cov must have shape ({k}, {k}) (K = total rank); got {arr.shape}."
        )
    asym = float(np.max(np.abs(arr - arr.T)))
    if asym > 1e-10 * max(1.0, np.max(np.abs(arr))):
        raise ValidationError(
            f"latent_cov must be symmetric; got max |latent_cov - latent_cov.T| = "
            f"{asym:.3g}."
        )
    lam = float(np.linalg.eigvalsh((arr + arr.T) / 2)[0])
    if lam < -1e-10 * max(1.0, float(np.max(np.abs(arr)))):
        raise ValidationError(
            f"latent_cov must be positive semi-definite; got smallest eigenvalue "
            f"{lam:.3g}."
        )
    return _readonly((arr + arr.T) / 2)


def check_dense_cov(d: int, what: str) -> None:
    """Refuse a dense ``d x d`` float64 matrix (and one work copy) that cannot fit.

    Examples
    --------
    >>> from hcl_stats.model import check_dense_cov
    >>> check_dense_cov(100, "the covariance")  # 80 kB: fine
    >>> try:
    ...     check_dense_cov(10**7, "the covariance")  # 800 TB per copy
    ... except ValueError as exc:
    ...     print(str(exc).split(";")[0])
    the covariance (d = 10000000) must fit in memory
    """
    check_memory(
        16 * int(d) ** 2, f"{what} (d = {int(d)})",
        fix="Work with the loadings (d x K) instead of the dense covariance.",
    )


class LoadingsAccess:
    """Block access shared by models and fit results (mixin).

    Subclasses provide ``dims``, ``structure``, ``loadings`` (shape ``(d, K)``)
    and ``noise_var``.
    """

    dims: tuple[int, ...]
    structure: Structure
    loadings: NDArray[np.float64]
    noise_var: float | NDArray[np.float64]

    @property
    def n_modalities(self) -> int:
        """Deprecated spelling of :attr:`n_views` (emits a DeprecationWarning)."""
        warn_renamed("n_modalities", "n_views")
        return self.n_views

    @property
    def n_views(self) -> int:
        """Number of views ``M``."""
        return len(self.dims)

    @property
    def total_rank(self) -> int:
        """Total latent dimension ``K``."""
        return self.structure.total_rank

    def _check_view(self, m: Any, name: str = "m") -> int:
        """Return view index ``m`` checked to lie in ``range(M)``."""
        if isinstance(m, bool) or not isinstance(m, numbers.Integral):
            raise ValidationError(
                f"{name} must be a view index (an integer in 0..{self.n_views - 1}); "
                f"got {short_repr(m)}."
            )
        if not 0 <= int(m) < self.n_views:
            raise ValidationError(
                f"{name} must be a view index in 0..{self.n_views - 1} (there are "
                f"{self.n_views} views); got {int(m)}."
            )
        return int(m)

    def _check_block(
        self, block: Any, name: str = "block", *, in_structure: bool = True
    ) -> frozenset[int]:
        """Return ``block`` as a frozenset of view indices.

        Accepts a block text (view letters such as ``"AB"``, or the named form
        ``"{text,image}"`` when the structure has view names), or a set, frozenset,
        tuple or list of view indices (a block of ``structure.blocks`` is a
        frozenset). With ``in_structure`` the block must be one of the structure's
        blocks.
        """
        available = ", ".join(format_block(b) for b in self.structure.blocks)
        hint = (
            f"a block text such as {format_block(self.structure.blocks[0])!r}, or a "
            "set of view indices such as "
            f"{set(sorted(self.structure.blocks[0]))!r}; the structure's blocks are "
            f"{available}"
        )
        if isinstance(block, str):
            texts = {format_block(b): b for b in self.structure.blocks}
            if self.structure.view_names is not None:
                names = self.structure.view_names
                texts.update({format_block(b, names): b for b in self.structure.blocks})
            if block in texts:
                return texts[block]
            letters = _VIEW_LETTERS[: self.n_views]
            if not (block and all(ch in letters for ch in block)):
                raise ValidationError(
                    f"{name} must be one of the structure's blocks ({hint}); got "
                    f"{short_repr(block)}, which is not made of the view letters "
                    f"{letters[0]}-{letters[-1]}."
                )
            block = [letters.index(ch) for ch in block]
        if isinstance(block, np.ndarray):
            block = block.tolist()
        if not isinstance(block, Set | Sequence) or not block:
            raise ValidationError(
                f"{name} must be a non-empty block ({hint}); got {short_repr(block)}."
            )
        members = []
        for v in block:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not (
                0 <= int(v) < self.n_views
            ):
                raise ValidationError(
                    f"{name} must contain view indices in 0..{self.n_views - 1} "
                    f"({hint}); got {short_repr(block)}, which contains {short_repr(v)}."
                )
            members.append(int(v))
        key = frozenset(members)
        if in_structure and key not in self.structure.blocks:
            raise ValidationError(
                f"{name} must be one of the structure's blocks ({hint}); got "
                f"{format_block(key)} = {set(sorted(key))!r}, which is not in "
                f"structure {self.structure}."
            )
        return key

    def row_slice(self, m: int) -> slice:
        """Rows of view ``m`` in the stacked ``d``-dimensional vector."""
        m = self._check_view(m)
        off = int(sum(self.dims[:m]))
        return slice(off, off + self.dims[m])

    def view_rows(self, block: Sequence[int] | frozenset[int] | str) -> NDArray[np.intp]:
        """Row indices of the views in ``block`` (any set of views), in view order."""
        key = self._check_block(block, in_structure=False)
        return np.concatenate(
            [np.arange(self.row_slice(m).start, self.row_slice(m).stop) for m in sorted(key)]
        )

    def block(self, m: int, block: Sequence[int] | frozenset[int] | str) -> NDArray:
        """Loading block ``W_m^S`` of shape ``(d_m, r_S)`` (zero if ``m`` not in ``S``).

        Parameters
        ----------
        m : int
            View index in ``0..M-1``.
        block : str, set or frozenset of int
            A block of ``structure``: its text (``"AB"``) or its view indices
            (``{0, 1}``).

        Raises
        ------
        ValidationError
            If ``m`` is not a view index or ``block`` is not a block of ``structure``.
        """
        m = self._check_view(m)
        key = self._check_block(block)
        return self.loadings[self.row_slice(m), self.structure.columns(key)]

    def gram(self, block: Sequence[int] | frozenset[int] | str) -> NDArray:
        """Identified Gram ``W^S W^S^T`` over the views of ``S``.

        Parameters
        ----------
        block : str, set or frozenset of int
            A block of ``structure``: its text (``"AB"``) or its view indices
            (``{0, 1}``).

        Returns
        -------
        ndarray of shape (d_S, d_S)
            ``d_S = sum_{m in S} d_m``; includes the cross-view blocks
            ``W_m^S W_{m'}^S^T``.

        Raises
        ------
        ValidationError
            If ``block`` is not a block of ``structure``; the message lists them.
        """
        key = self._check_block(block)
        w = np.asarray(self.loadings)[self.view_rows(key)][:, self.structure.columns(key)]
        return w @ w.T

    def noise_diagonal(self) -> NDArray[np.float64]:
        """Diagonal of ``Psi``, shape ``(d,)``."""
        return noise_diagonal(self.noise_var, self.dims)


@dataclass(frozen=True, eq=False)
class HierarchicalFactorModel(LoadingsAccess):
    """Hierarchical multi-view factor model with block-sparse loadings.

    Parameters
    ----------
    dims : sequence of int
        Per-view dimensions ``(d_1, ..., d_M)``; ``d = sum(dims)``.
    structure : Structure
        Sharing structure with ranks ``r_S``; ``K = structure.total_rank``.
    loadings : array_like of shape (d, K)
        ``W``; columns in the canonical block order of ``structure``. Must be exactly
        zero outside ``structure.mask(dims)``.
    noise_var : float or array_like of shape (M,)
        ``sigma^2`` (isotropic) or one ``sigma_m^2`` per view.
    latent_cov : float or array_like of shape (K, K), optional
        ``Cov(z)``. ``None`` (the model's assumption) means ``I_K``; a float ``rho``
        means the equicorrelation matrix. Non-identity values deliberately break the
        uncorrelated-latents assumption.

    Raises
    ------
    ValidationError
        On inconsistent shapes, non-zero loadings outside the mask, non-positive
        noise or a latent covariance that is not PSD.

    Notes
    -----
    ``W`` is identified only up to ``W -> W diag(Q_S)`` with one orthogonal
    ``Q_S`` per block (docs/identifiability.md); everything this class computes
    (covariance, likelihood) is invariant to that.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> s = hs.Structure.parse("AB:1 A:1 B:1")
    >>> m = hs.HierarchicalFactorModel.random((3, 4), s, noise_var=0.5, rng=0)
    >>> m.covariance().shape
    (7, 7)
    """

    dims: tuple[int, ...]
    structure: Structure
    loadings: NDArray[np.float64]
    noise_var: float | NDArray[np.float64]
    latent_cov: NDArray[np.float64] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.structure, Structure):
            raise ValidationError(
                f"structure must be a Structure; got {short_repr(self.structure)}."
            )
        dims = self.structure._check_dims(self.dims)
        w = check_float_array(self.loadings, "loadings", ndim=2)
        d, k = sum(dims), self.structure.total_rank
        if w.shape != (d, k):
            raise ValidationError(
                f"loadings must have shape (d, K) = ({d}, {k}); got {w.shape}."
            )
        outside = (w != 0) & ~self.structure.mask(dims)
        if np.any(outside):
            row, col = (int(i) for i in np.argwhere(outside)[0])
            raise ValidationError(
                f"loadings must be exactly zero outside the structure mask; got "
                f"{float(w[row, col])!r} at row {row}, column {col}."
            )
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "loadings", _readonly(w))
        object.__setattr__(
            self, "noise_var", check_noise_var(self.noise_var, len(dims))
        )
        object.__setattr__(self, "latent_cov", _check_latent_cov(self.latent_cov, k))

    # ---------------------------------------------------------------- builders
    @classmethod
    def random(
        cls,
        dims: Sequence[int],
        structure: Structure | str,
        *,
        noise_var: float | ArrayLike = 1.0,
        singular_values: tuple[float, float] = (0.5, 1.5),
        latent_cov: float | ArrayLike | None = None,
        rng: Any = None,
    ) -> HierarchicalFactorModel:
        """Draw a model as in the paper's simulations (paper.md §1.2).

        Each non-zero block is ``W_m^S = O_1 diag(a) O_2`` with ``O_1`` (``d_m x r_S``)
        orthonormal columns from the QR of a Gaussian matrix, ``O_2`` a random
        ``r_S x r_S`` orthogonal matrix and ``a`` uniform on ``singular_values``,
        sorted decreasingly.

        Parameters
        ----------
        dims : sequence of int
            ``(d_1, ..., d_M)``; each ``d_m`` must be at least the largest rank of a
            block containing ``m``.
        structure : Structure or str
            The sharing structure (text form accepted).
        noise_var : float or array_like of shape (M,), default=1.0
            Noise variance ``sigma^2`` or per-view ``sigma_m^2``.
        singular_values : (float, float) or float, default=(0.5, 1.5)
            Range ``(a, b)`` of the uniform singular values, ``0 <= a <= b <= 1e100``;
            one number ``c`` means ``(c, c)``.
        latent_cov : float or array_like of shape (K, K), optional
            See the class docstring.
        rng : None, int, SeedSequence or Generator
            Source of randomness, normalised with ``np.random.default_rng``.

        Returns
        -------
        HierarchicalFactorModel
        """
        dims = check_dims(dims)
        structure = Structure.coerce(structure, len(dims))
        lo_hi = ((singular_values, singular_values) if np.ndim(singular_values) == 0
                 else tuple(singular_values))  # a number: every singular value equal
        if len(lo_hi) != 2:
            raise ValidationError(
                f"singular_values must be a pair (low, high) or one number; got {lo_hi!r}."
            )
        lo = check_real(lo_hi[0], "singular_values[0]", low=0.0)
        hi = check_real(lo_hi[1], "singular_values[1]", low=lo)
        if hi > 1e100:
            raise ValidationError(
                f"singular_values[1] must be <= 1e100 (so that W W^T and the covariance "
                f"fit in float64); got {hi!r}."
            )
        gen = as_generator(rng)
        for b, r in zip(structure.blocks, structure.ranks, strict=True):
            for m in sorted(b):
                if dims[m] < r:
                    raise ValidationError(
                        f"dims[{m}] = {dims[m]} is smaller than rank {r} of block "
                        f"{format_block(b)}; a d_m x r_S block cannot have full "
                        "column rank."
                    )
        # W (d x K) plus, per block, a d_m x r Gaussian and its QR factor
        big = max(dims[m] * r for b, r in zip(structure.blocks, structure.ranks, strict=True)
                  for m in b)
        check_memory(
            8 * (sum(dims) * structure.total_rank + 3 * big),
            f"HierarchicalFactorModel.random with dims {short_repr(dims)} and total rank "
            f"K = {structure.total_rank}",
            fix="Use smaller dims or ranks.",
        )
        w = np.zeros((sum(dims), structure.total_rank))
        row_off = block_offsets(dims)
        for b, r in zip(structure.blocks, structure.ranks, strict=True):
            cols = structure.columns(b)
            for m in sorted(b):
                o1, _ = np.linalg.qr(gen.standard_normal((dims[m], r)))
                o2, rr = np.linalg.qr(gen.standard_normal((r, r)))
                o2 = o2 * np.sign(np.where(np.diag(rr) == 0, 1.0, np.diag(rr)))
                a = np.sort(gen.uniform(lo, hi, size=r))[::-1]
                w[row_off[m] : row_off[m + 1], cols] = (o1 * a) @ o2
        return cls(dims, structure, w, noise_var, latent_cov)

    # ---------------------------------------------------------------- queries
    def signal_covariance(self) -> NDArray[np.float64]:
        """``W Cov(z) W^T``, shape ``(d, d)``."""
        check_dense_cov(sum(self.dims), "the d x d covariance of the model")
        w = np.asarray(self.loadings)
        if self.latent_cov is None:
            return w @ w.T
        return w @ self.latent_cov @ w.T

    def covariance(self) -> NDArray[np.float64]:
        """Population covariance ``Sigma = W Cov(z) W^T + Psi``, shape ``(d, d)``."""
        cov = self.signal_covariance()
        cov[np.diag_indices_from(cov)] += self.noise_diagonal()
        return cov

    def sample(self, n_samples: int, *, rng: Any = None) -> MultimodalData:
        """Draw ``n_samples`` i.i.d. observations.

        Uses ``Z = G L^T`` and ``E = N * sqrt(psi)`` with standard normals ``G``
        of shape ``(n, K)`` and ``N`` of shape ``(n, d)`` drawn in that order
        (never ``multivariate_normal``, whose output depends on LAPACK).

        Parameters
        ----------
        n_samples : int
            Number of samples ``n >= 2``.
        rng : None, int, SeedSequence or Generator

        Returns
        -------
        MultimodalData
        """
        n = check_int(n_samples, "n_samples", minimum=2)
        d, k = sum(self.dims), self.total_rank
        # Z (n x K), E and X (n x d), the product Z W^T and a scaled copy of E
        check_memory(
            8 * n * (2 * k + 4 * d),
            f"sample(n_samples={n}) with d = {d} and K = {k}",
            fix="Draw fewer samples, or draw them in batches with separate rng streams.",
        )
        gen = as_generator(rng)
        z = gen.standard_normal((n, self.total_rank))
        if self.latent_cov is not None:
            vals, vecs = np.linalg.eigh(self.latent_cov)
            z = z @ (vecs * np.sqrt(np.clip(vals, 0, None))).T
        e = gen.standard_normal((n, sum(self.dims)))
        x = z @ np.asarray(self.loadings).T + e * np.sqrt(self.noise_diagonal())
        return MultimodalData.from_stacked(x, self.dims)

    def loglik(self, data: MultimodalData | Sequence[ArrayLike]) -> float:
        """Gaussian log-likelihood of mean-zero data under the model.

        Uses the matrix-inversion lemma, so only a ``K x K`` system is solved
        (when ``latent_cov`` is ``None``).

        Parameters
        ----------
        data : MultimodalData or list of arrays of shape (n, d_m)

        Returns
        -------
        float
            ``sum_i log N(x_i; 0, Sigma)``.
        """
        if not isinstance(data, MultimodalData):
            data = MultimodalData(data)
        if data.dims != self.dims:
            raise ValidationError(
                f"data dims {data.dims} do not match the model dims {self.dims}."
            )
        x = data.stacked
        n, d = x.shape
        psi = self.noise_diagonal()
        w = np.asarray(self.loadings)
        if self.latent_cov is not None:
            vals, vecs = np.linalg.eigh(self.latent_cov)
            w = w @ (vecs * np.sqrt(np.clip(vals, 0, None)))
        wp = w / psi[:, None]
        core = np.eye(w.shape[1]) + w.T @ wp
        chol = np.linalg.cholesky(core)
        logdet = float(np.sum(np.log(psi)) + 2 * np.sum(np.log(np.diag(chol))))
        xp = x / psi
        proj = np.linalg.solve(chol, wp.T @ x.T)
        quad = float(np.sum(x * xp) - np.sum(proj * proj))
        return -0.5 * (n * d * np.log(2 * np.pi) + n * logdet + quad)


class ViewsShape:
    """Shape properties of a container holding one array per view in ``Xs`` (mixin)."""

    Xs: tuple[NDArray[np.float64], ...]

    @property
    def dims(self) -> tuple[int, ...]:
        """Per-view dimensions ``(d_1, ..., d_M)``."""
        return tuple(int(x.shape[1]) for x in self.Xs)

    @property
    def n_samples(self) -> int:
        """Number of samples ``n`` (rows of every view)."""
        return int(self.Xs[0].shape[0])

    @property
    def n_modalities(self) -> int:
        """Deprecated spelling of :attr:`n_views` (emits a DeprecationWarning)."""
        warn_renamed("n_modalities", "n_views")
        return self.n_views

    @property
    def n_views(self) -> int:
        """Number of views ``M``."""
        return len(self.Xs)

    @property
    def modality_names(self) -> tuple[str, ...] | None:
        """Deprecated spelling of :attr:`view_names` (emits a DeprecationWarning)."""
        warn_renamed("modality_names", "view_names")
        return self.view_names


@dataclass(frozen=True, eq=False, init=False)
class MultimodalData(ViewsShape):
    """Validated multi-view data: one read-only ``(n_samples, d_m)`` array per view.

    Parameters
    ----------
    views : sequence of array_like
        ``M`` arrays with the same number of rows ``n >= 2``; converted to float64
        copies and made read-only, so no estimator can modify them.
    view_names : sequence of str, optional
        Display names of the views (``modality_names=`` is its deprecated
        spelling).

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats import MultimodalData
    >>> data = MultimodalData([np.eye(3), np.ones((3, 2))])
    >>> data.dims, data.n_samples
    ((3, 2), 3)
    """

    Xs: tuple[NDArray[np.float64], ...]
    view_names: tuple[str, ...] | None

    def __init__(
        self,
        views: Sequence[ArrayLike],
        view_names: Sequence[str] | None = None,
        *,
        modality_names: Sequence[str] | None = None,
    ) -> None:
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        # check_views returns private float64 copies (or a read-only memory map):
        # freeze them, no second copy
        arrays = check_views(views)
        for x in arrays:
            x.setflags(write=False)
        if view_names is not None:
            if isinstance(view_names, str):
                raise ValidationError(
                    f"view_names must be a sequence of names, one per view; got {view_names!r}."
                )
            view_names = tuple(str(n) for n in view_names)
            if len(set(view_names)) != len(view_names):
                raise ValidationError(f"view_names must be distinct; got {view_names}.")
            if len(view_names) != len(arrays):
                raise ValidationError(
                    f"view_names must have {len(arrays)} entries; got "
                    f"{len(view_names)}."
                )
        object.__setattr__(self, "Xs", arrays)
        object.__setattr__(self, "view_names", view_names)

    @classmethod
    def from_stacked(
        cls,
        x: ArrayLike,
        dims: Sequence[int],
        view_names: Sequence[str] | None = None,
    ) -> MultimodalData:
        """Split a stacked ``(n, d)`` array into views of widths ``dims``."""
        dims = check_dims(dims)
        arr = check_float_array(x, "X", ndim=2)
        if arr.shape[1] != sum(dims):
            raise ValidationError(
                f"X has {arr.shape[1]} columns but sum(dims) = {sum(dims)}."
            )
        cuts = np.cumsum(dims)[:-1]
        return cls(np.split(arr, cuts, axis=1), view_names)

    @property
    def stacked(self) -> NDArray[np.float64]:
        """All views side by side, shape ``(n, d)``."""
        return np.hstack(self.Xs)

    def sample_cov(self, ddof: int = 1) -> NDArray[np.float64]:
        """Sample covariance of the stacked, column-centred data, shape ``(d, d)``.

        Parameters
        ----------
        ddof : int, default=1
            Divisor is ``n - ddof`` (1 gives the unbiased estimator).
        """
        ddof = check_int(ddof, "ddof", minimum=0)
        if self.n_samples - ddof < 1:
            raise ValidationError(
                f"n_samples - ddof must be >= 1; got {self.n_samples} - {ddof}."
            )
        check_dense_cov(sum(self.dims), "the d x d sample covariance")
        x = self.stacked
        with np.errstate(over="ignore", invalid="ignore"):
            x = x - x.mean(axis=0)
            cov = x.T @ x / (self.n_samples - ddof)
        if not np.all(np.isfinite(cov)):
            raise ValidationError(
                "views must have a sample covariance representable in float64; got "
                f"an overflow (largest |entry| = {float(np.max(np.abs(x))):.3g}). "
                "Rescale the views."
            )
        return (cov + cov.T) / 2.0
