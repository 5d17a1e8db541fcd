"""Exact generic ranks for the identifiability checker (private).

Ranks modulo primes (:func:`rank_mod_p`), the Jacobian of the parameter-to-covariance
map (:func:`jacobian_rank`), the latent-block verdicts and the Schur matching
condition (:func:`schur_rank`, a max-flow). :mod:`hcl_stats.identifiability`
assembles them into verdicts and re-exports the public names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import block_offsets
from ._validation import as_generator, check_choice, check_dims
from .exceptions import NotIdentifiableError, ValidationError
from .structure import Structure, format_block

__all__ = ["JacobianRank", "Layout", "decide_rank", "direct_is_cheap", "hall_witness", "jacobian_rank", "latent_block_verdicts", "n_jacobian_entries", "rank_mod_p", "require_schur_step", "schur_rank"]


NOISE_MODELS = ("scalar", "per_view", "known")


def coerce_design(structure: Any, dims: Sequence[int]) -> tuple[Structure, tuple[int, ...]]:
    """A checked ``(Structure, dims)`` pair from a structure (or its text) and dims."""
    dims = check_dims(dims)
    structure = Structure.coerce(structure, len(dims))
    return structure, structure._check_dims(dims)


#: Primes below 2^26: a product of two residues is below 2^52, so the modular
#: arithmetic below is exact in int64 without overflow.
PRIMES = (67108859, 67108837, 67108819, 67108777, 67108763, 67108757)


#: Above this cost (``min(m, n)^2 max(m, n)`` for an ``m x n`` Jacobian) the
#: ``'auto'`` method decides the rank by an SVD gap test first.
_EXACT_COST = 1e11


def rank_mod_p(a: Any, prime: int) -> int:
    """Exact rank of an integer matrix over the finite field ``F_prime``.

    Gaussian elimination with modular inverses (``x^(p-2) = x^-1``); every
    intermediate value is reduced, so with ``prime < 2^26`` no product exceeds
    ``2^52`` and int64 arithmetic is exact.

    Parameters
    ----------
    a : array_like of int, shape (m, n)
    prime : int
        A prime in ``[2, 2^26)``.

    Returns
    -------
    int
        ``rank_F_p(a)``, which is at most ``rank_Q(a)`` (a minor that is non-zero
        mod ``p`` is a non-zero integer).

    Raises
    ------
    ValidationError
        If ``prime`` is outside ``[2, 2^26)``.

    Examples
    --------
    >>> rank_mod_p([[1, 2], [2, 4]], 67108859)
    1
    >>> rank_mod_p([[1, 2], [3, 4]], 67108859)
    2
    """
    if not (isinstance(prime, int | np.integer) and 2 <= prime < 2**26):
        raise ValidationError(f"prime must be an integer in [2, 2^26); got {prime!r}.")
    prime = int(prime)
    a = np.array(a, dtype=np.int64) % prime
    if a.ndim != 2:
        raise ValidationError(f"a must be a 2-D integer matrix; got shape {a.shape}.")
    if a.shape[0] > a.shape[1]:
        a = np.ascontiguousarray(a.T)
    n_rows, n_cols = a.shape
    rank = 0
    for col in range(n_cols):
        if rank == n_rows:
            break
        nz = np.flatnonzero(a[rank:, col])
        if nz.size == 0:
            continue
        piv = rank + int(nz[0])
        if piv != rank:
            a[[rank, piv], col:] = a[[piv, rank], col:]
        inv = pow(int(a[rank, col]), prime - 2, prime)
        a[rank, col:] = a[rank, col:] * inv % prime
        below = rank + 1 + np.flatnonzero(a[rank + 1 :, col])
        if below.size:
            f = a[below, col][:, None]
            a[below, col:] = (a[below, col:] - f * a[rank, col:]) % prime
        rank += 1
    return rank


class Layout:
    """Free parameters of the model and the vech coordinates of ``Sigma``."""

    def __init__(self, structure: Structure, dims: tuple[int, ...], noise: str,
                 pairs: Sequence[tuple[frozenset[int], frozenset[int]]] = ()) -> None:
        self.structure, self.dims, self.noise = structure, dims, noise
        mask = structure.mask(dims)
        self.d, self.k = mask.shape
        self.w_rows, self.w_cols = np.nonzero(mask)
        off = block_offsets(dims)
        if noise == "scalar":
            self.noise_rows = [np.arange(self.d)]
        elif noise == "per_view":
            self.noise_rows = [np.arange(off[m], off[m + 1]) for m in range(len(dims))]
        else:
            self.noise_rows = []
        # latent-correlation parameters R_ab = R_ba for a in S, b in T, {S, T} in pairs
        self.r_params: list[tuple[int, int]] = []
        for s, t in pairs:
            cs, ct = structure.columns(s), structure.columns(t)
            self.r_params += [(a, b) for a in range(cs.start, cs.stop)
                              for b in range(ct.start, ct.stop)]
        self.n_moments = self.d * (self.d + 1) // 2
        self.n_w = int(self.w_rows.size)
        self.n_params = self.n_w + len(self.noise_rows) + len(self.r_params)

    @functools.cached_property
    def pos(self) -> NDArray[np.int64]:
        """``pos[i, j]``: the vech index of ``Sigma_ij``, shape ``(d, d)``.

        Built on first use: only a Jacobian needs it, and at large ``d`` the
        counting and Schur routes decide without one (it takes ``8 d^2`` bytes).
        """
        iu, ju = np.triu_indices(self.d)
        pos = np.zeros((self.d, self.d), dtype=np.int64)
        pos[iu, ju] = np.arange(iu.size)
        pos[ju, iu] = np.arange(iu.size)
        return pos

    def n_rotations(self) -> int:
        """Generic dimension of the block-rotation orbit ``prod_S O(r_S)``."""
        g = 0
        for b, r in zip(self.structure.blocks, self.structure.ranks, strict=True):
            d_s = sum(self.dims[m] for m in b)
            g += r * (r - 1) // 2
            if r > d_s:  # W^S has rank d_S: a stabiliser O(r - d_S) remains
                g -= (r - d_s) * (r - d_s - 1) // 2
        return g

    def random_point(self, gen: np.random.Generator, prime: int | None):
        """Loadings (d, K) and latent covariance R (K, K) at a random point."""
        mask = self.structure.mask(self.dims)
        if prime is None:
            w = np.where(mask, gen.standard_normal(mask.shape), 0.0)
            r = np.eye(self.k)
            for a, b in self.r_params:
                r[a, b] = r[b, a] = 0.3 * gen.standard_normal()
            return w, r
        w = np.where(mask, gen.integers(0, prime, size=mask.shape), 0).astype(np.int64)
        r = np.eye(self.k, dtype=np.int64)
        for a, b in self.r_params:
            r[a, b] = r[b, a] = int(gen.integers(0, prime))
        return w, r

    def jacobian_t(self, w: NDArray, r: NDArray, prime: int | None) -> NDArray:
        """Transposed Jacobian ``d vech(Sigma) / d theta``, shape (n_params, n_moments)."""
        dtype = np.float64 if prime is None else np.int64
        if self.r_params:
            v = _matmul(w, r, prime)
        else:
            v = w
        jt = np.zeros((self.n_params, self.n_moments), dtype=dtype)
        q = np.arange(self.n_w)
        vals = v[:, self.w_cols].T.copy()  # (n_w, d): d Sigma[i, :] / d W[i, c] = v[:, c]
        vals[q, self.w_rows] *= 2  # the diagonal entry gets 2 v[i, c]
        jt[q[:, None], self.pos[self.w_rows]] = vals
        row = self.n_w
        for rows in self.noise_rows:
            jt[row, self.pos[rows, rows]] = 1
            row += 1
        for a, b in self.r_params:
            outer = np.outer(w[:, a], w[:, b])
            sym = outer + outer.T
            iu, ju = np.triu_indices(self.d)
            jt[row, :] = sym[iu, ju]
            row += 1
        if prime is not None:
            jt %= prime
        return jt

    def gram_jacobian_t(self, w: NDArray, block: frozenset[int], prime: int | None) -> NDArray:
        """``d vech(W^S W^S^T) / d theta`` over the rows of ``S``, transposed."""
        cols = self.structure.columns(block)
        ws = np.zeros_like(w)
        ws[:, cols] = w[:, cols]
        keep_w = (self.w_cols >= cols.start) & (self.w_cols < cols.stop)
        dtype = np.float64 if prime is None else np.int64
        jt = np.zeros((self.n_params, self.n_moments), dtype=dtype)
        q = np.flatnonzero(keep_w)
        vals = ws[:, self.w_cols[q]].T.copy()
        vals[np.arange(q.size), self.w_rows[q]] *= 2
        jt[q[:, None], self.pos[self.w_rows[q]]] = vals
        off = block_offsets(self.dims)
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(block)])
        sub = self.pos[np.ix_(rows, rows)][np.triu_indices(rows.size)]
        out = jt[:, sub]
        if prime is not None:
            out %= prime
        return out


def _matmul(a: NDArray, b: NDArray, prime: int | None) -> NDArray:
    if prime is None:
        return a @ b
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for j in range(a.shape[1]):  # K is small; one rank-one update per column
        out = (out + np.outer(a[:, j], b[j, :]) % prime) % prime
    return out


@dataclass(frozen=True)
class JacobianRank:
    """Generic rank of the Jacobian of ``theta -> vech(Sigma)``.

    Attributes
    ----------
    rank : int
        Rank found (over ``F_p`` at random points, or numerically).
    target : int
        ``n_params - n_rotations``, the rank of a locally identifiable design.
    n_params, n_rotations, n_moments : int
        Free parameters, generic dimension of the block-rotation orbit, and
        ``d (d + 1) / 2``.
    method : str
        ``'count'`` (``target > n_moments``), ``'exact'`` (modular) or ``'float'``.
    certified : bool
        True when the verdict cannot be wrong: full rank was found exactly
        (a rank over ``F_p`` at one point bounds the generic rank over ``Q`` from
        below), or ``target > n_moments``. A deficient modular rank is wrong only
        if every trial hit a root of a non-zero minor (probability at most
        ``error_bound``) or every prime divides all its coefficients.
    error_bound : float
        Schwartz-Zippel bound on a false "not identifiable" (0 when certified).
    """

    rank: int
    target: int
    n_params: int
    n_rotations: int
    n_moments: int
    method: str
    certified: bool
    error_bound: float = 0.0

    @property
    def full(self) -> bool:
        """True if the rank reaches ``target``: generic local identifiability."""
        return self.rank >= self.target


def jacobian_rank(
    structure: Structure | str,
    dims: Sequence[int],
    *,
    noise: str = "scalar",
    method: str = "auto",
    trials: int = 2,
    rng: Any = 0,
) -> JacobianRank:
    """Generic rank of the Jacobian of ``(W under the mask, noise) -> vech(Sigma)``.

    Parameters
    ----------
    structure : Structure or str
    dims : sequence of int
    noise : {'scalar', 'per_view', 'known'}, default='scalar'
        One ``sigma^2``, one ``sigma_m^2`` per view, or a known noise (no
        noise parameters).
    method : {'auto', 'exact', 'float'}, default='auto'
        ``'exact'``: rank over ``F_p`` (``p`` a prime near ``2^26``) at ``trials``
        random integer points, one prime each. ``'float'``: SVD at Gaussian points
        with a gap test (``sigma_target / sigma_1 > 1e-7``: full;
        ``< 1e3 eps n``: deficient); it falls back to ``'exact'`` when the gap is
        ambiguous. ``'auto'``: ``'exact'`` below a size threshold, else ``'float'``.
    trials : int, default=2
        Number of independent random points.
    rng : None, int, SeedSequence or Generator, default=0
        Source of the random points (fixed by default: the verdict is
        deterministic).

    Returns
    -------
    JacobianRank

    Examples
    --------
    >>> jr = jacobian_rank("AB:2 B:2 A:1 C:1", (10, 3, 10))
    >>> jr.full, jr.rank, jr.target, jr.certified
    (True, 51, 51, True)
    """
    structure, dims = coerce_design(structure, dims)
    noise = check_choice(noise, "noise", NOISE_MODELS)
    method = check_choice(method, "method", ("auto", "exact", "float"))
    gen = as_generator(rng)
    if method == "auto":
        return decide_rank(structure, dims, noise, gen, trials)
    return _rank_of(Layout(structure, dims, noise), method, trials, gen)


#: Jacobians with more entries than this are not formed by the 'auto' route
#: unless no shortcut applies; above _MAX_ENTRIES they are never formed.
_DIRECT_ENTRIES = 2e6


_MAX_ENTRIES = 3e8


def n_jacobian_entries(structure: Structure, dims, noise: str) -> float:
    d = sum(dims)
    p = sum(r * sum(dims[m] for m in b) for b, r in zip(structure.blocks, structure.ranks,
                                                         strict=True))
    return float(p + len(dims)) * d * (d + 1) / 2


def _schur_route(structure: Structure, dims, noise: str) -> bool:
    """Theorem 4's hypotheses: block ranks, the noise gap and the matching condition."""
    if any(r > sum(dims[m] for m in b) for b, r in zip(structure.blocks, structure.ranks,
                                                        strict=True)):
        return False
    if noise == "scalar" and sum(dims) <= structure.total_rank:
        return False
    if noise == "per_view" and any(d <= structure.view_rank(m) for m, d in enumerate(dims)):
        return False
    return all(_full(schur_rank(structure, dims, b)) for b in structure.blocks)


def _full(rank_and_target: tuple[int, int]) -> bool:
    return rank_and_target[0] == rank_and_target[1]


def _view_rows_rank(structure: Structure, dims, m: int) -> tuple[int, int]:
    """Generic column rank of the loadings of all rows on the blocks containing ``m``."""
    blocks = [t for t in structure.blocks if m in t]
    edges = [(v, j) for v in range(len(dims)) for j, t in enumerate(blocks) if v in t]
    flow = _max_flow(list(dims), [structure.rank_of(t) for t in blocks], edges)
    return flow, sum(structure.rank_of(t) for t in blocks)


def direct_is_cheap(structure: Structure, dims, noise: str) -> bool:
    """Whether the Jacobian is small enough to take its rank directly."""
    return n_jacobian_entries(structure, dims, noise) <= _DIRECT_ENTRIES


def decide_rank(structure: Structure, dims, noise: str, gen, trials: int = 2) -> JacobianRank:
    """The 'auto' route: counting, Theorem 4, direct rank, or padding (Lemma 7)."""
    lay = Layout(structure, dims, noise)
    g = lay.n_rotations()
    target = lay.n_params - g
    common = {"target": target, "n_params": lay.n_params, "n_rotations": g,
              "n_moments": lay.n_moments}
    if target > lay.n_moments:
        return JacobianRank(rank=lay.n_moments, method="count", certified=True, **common)
    if _schur_route(structure, dims, noise):
        return JacobianRank(rank=target, method="schur", certified=True, **common)
    if direct_is_cheap(structure, dims, noise):
        return _rank_of(lay, "exact", trials, gen)
    for extra in (2, 6):
        small = tuple(max(1, min(d, structure.view_rank(m) + extra)) for m, d in enumerate(dims))
        if small == tuple(dims):
            continue
        grown = [m for m, d in enumerate(dims) if d > small[m]]
        if not all(_full(_view_rows_rank(structure, small, m)) for m in grown):
            continue
        sub = decide_rank(structure, small, noise, gen, trials)
        if sub.full and sub.certified:
            return JacobianRank(rank=target, method="padding", certified=True, **common)
    if n_jacobian_entries(structure, dims, noise) > _MAX_ENTRIES:
        raise ValidationError(
            f"dims must be small enough for the exact criterion without a shortcut; got "
            f"{tuple(dims)}: the Jacobian would have {n_jacobian_entries(structure, dims, noise):.3g} "
            f"entries (> {_MAX_ENTRIES:.0e}) and neither the Schur route nor padding "
            "from smaller dims decides it."
        )
    return _rank_of(lay, "exact", trials, gen)


def _rank_of(lay: Layout, method: str, trials: int, gen) -> JacobianRank:
    g = lay.n_rotations()
    target = lay.n_params - g
    common = {"target": target, "n_params": lay.n_params, "n_rotations": g,
              "n_moments": lay.n_moments}
    if target > lay.n_moments:
        return JacobianRank(rank=lay.n_moments, method="count", certified=True, **common)
    lo, hi = sorted((lay.n_params, lay.n_moments))
    if method == "float" or (method == "auto" and lo * lo * hi > _EXACT_COST):
        ranks = []
        for _ in range(trials):
            w, r = lay.random_point(gen, None)
            sv = np.linalg.svd(lay.jacobian_t(w, r, None), compute_uv=False)
            if target == 0 or sv[target - 1] > 1e-7 * sv[0]:
                return JacobianRank(rank=target, method="float", certified=False, **common)
            small = 1e3 * np.finfo(float).eps * max(lay.n_params, lay.n_moments) * sv[0]
            if sv[target - 1] >= small:
                break  # ambiguous gap: decide exactly
            ranks.append(int(np.sum(sv > small)))
        else:
            return JacobianRank(rank=max(ranks), method="float", certified=False, **common)
    best = 0
    for t in range(trials):
        prime = PRIMES[t % len(PRIMES)]
        w, r = lay.random_point(gen, prime)
        best = max(best, rank_mod_p(lay.jacobian_t(w, r, prime), prime))
        if best >= target:
            return JacobianRank(rank=best, method="exact", certified=True, **common)
    bound = float(np.prod([target / PRIMES[t % len(PRIMES)] for t in range(trials)]))
    return JacobianRank(rank=best, method="exact", certified=False, error_bound=bound,
                        **common)


def latent_block_verdicts(
    structure: Structure | str,
    dims: Sequence[int],
    pairs: Sequence[tuple[Any, Any]],
    *,
    noise: str = "scalar",
    trials: int = 2,
    rng: Any = 0,
) -> dict[frozenset[int], bool]:
    """Which block contributions are identified when some blocks' latents correlate.

    The model is ``Sigma = W R W^T + Psi`` with ``R_SS = I`` (correlation inside a
    block is absorbed by ``W^S R_SS^{1/2}``) and a free cross-covariance ``R_ST``
    for every pair in ``pairs``. The contribution ``W^S W^S^T`` of block ``S`` is
    generically locally identified iff appending the rows of
    ``d vech(W^S W^S^T) / d theta`` to the Jacobian does not raise its rank
    (docs/identifiability.md, Theorem 5).

    Parameters
    ----------
    structure : Structure or str
    dims : sequence of int
    pairs : sequence of (block, block)
        Pairs of distinct blocks whose latents may correlate (blocks as
        iterables of view indices).
    noise : {'scalar', 'per_view', 'known'}, default='scalar'
    trials : int, default=2
        Random points over ``F_p``; the larger rank of each matrix is used.
    rng : None, int, SeedSequence or Generator, default=0

    Returns
    -------
    dict[frozenset[int], bool]

    Examples
    --------
    >>> v = latent_block_verdicts("AB:1 A:1 B:1", (3, 3), [({0}, {0, 1})])
    >>> [v[frozenset(b)] for b in ({0, 1}, {0}, {1})]
    [False, False, True]
    """
    structure, dims = coerce_design(structure, dims)
    noise = check_choice(noise, "noise", NOISE_MODELS)
    canon = []
    for s, t in pairs:
        s, t = frozenset(s), frozenset(t)
        for b in (s, t):
            if b not in structure.blocks:
                raise ValidationError(
                    f"pairs must name blocks of the structure {structure}; got "
                    f"{format_block(b)}."
                )
        if s == t:
            raise ValidationError(
                f"pairs must join two different blocks; got {format_block(s)} twice "
                "(correlation inside a block is always absorbed)."
            )
        canon.append((s, t))
    lay = Layout(structure, dims, noise, canon)
    gen = as_generator(rng)
    points = []
    for t in range(trials):
        prime = PRIMES[t % len(PRIMES)]
        w, r = lay.random_point(gen, prime)
        jt = lay.jacobian_t(w, r, prime)
        points.append((prime, w, jt, rank_mod_p(jt, prime)))
    out = {}
    for b in structure.blocks:
        ranks_aug, ranks = [], []
        for prime, w, jt, rk in points:
            aug = np.concatenate([jt, lay.gram_jacobian_t(w, b, prime)], axis=1)
            ranks_aug.append(rank_mod_p(aug, prime))
            ranks.append(rk)
        out[b] = max(ranks_aug) == max(ranks)
    return out


def _max_flow(supply: Sequence[int], demand: Sequence[int], edges) -> int:
    """Maximum flow source -> rows (``supply``) -> columns (``demand``) -> sink.

    ``edges`` lists ``(row, column)`` pairs of unbounded capacity. Augmenting
    paths (Edmonds-Karp); the graphs here have at most 26 + 2^26 nodes in
    principle but a few dozen in practice.
    """
    n_r, n_c = len(supply), len(demand)
    n = n_r + n_c + 2
    src, snk = n - 2, n - 1
    cap: dict[tuple[int, int], float] = {}
    adj: list[set[int]] = [set() for _ in range(n)]

    def add(u: int, v: int, c: float) -> None:
        cap[(u, v)] = cap.get((u, v), 0) + c
        cap.setdefault((v, u), 0)
        adj[u].add(v)
        adj[v].add(u)

    for i, s in enumerate(supply):
        add(src, i, s)
    for j, t in enumerate(demand):
        add(n_r + j, snk, t)
    for i, j in edges:
        add(i, n_r + j, float("inf"))
    flow = 0
    while True:
        parent = {src: src}
        queue = [src]
        while queue and snk not in parent:
            nxt = []
            for u in queue:
                for v in adj[u]:
                    if v not in parent and cap[(u, v)] > 0:
                        parent[v] = u
                        nxt.append(v)
            queue = nxt
        if snk not in parent:
            return int(flow)
        path, v = [], snk
        while v != src:
            path.append((parent[v], v))
            v = parent[v]
        push = min(cap[e] for e in path)
        for u, v in path:
            cap[(u, v)] -= push
            cap[(v, u)] += push
        flow += push


def schur_rank(
    structure: Structure | str, dims: Sequence[int], block: Any
) -> tuple[int, int]:
    """Generic column rank of the loadings the Schur step conditions on.

    For block ``S`` with outside views ``O``, ``C_O`` is the ``d_O x k_O`` matrix
    of the loadings of the views in ``O`` on the blocks ``T`` that meet ``O``; its
    ``(m, T)`` sub-block is free when ``m`` is in ``T`` and zero otherwise. Its
    rank for generic free entries is the size of a maximum matching between its
    rows and columns (structural rank), computed as a maximum flow in which view
    ``m`` supplies ``d_m`` rows and block ``T`` needs ``r_T`` columns
    (docs/identifiability.md, Theorem 3).

    Parameters
    ----------
    structure : Structure or str
    dims : sequence of int
    block : iterable of int
        A block of the structure.

    Returns
    -------
    (rank, k_O) : tuple of int
        The Schur step isolates ``S`` iff ``rank == k_O``.

    Examples
    --------
    >>> schur_rank("AB:2 B:2 A:1 C:1", (10, 3, 10), {0})
    (4, 5)
    >>> schur_rank("AB:2 B:2 A:1 C:1", (10, 4, 10), {0})
    (5, 5)
    """
    structure, dims = coerce_design(structure, dims)
    block = frozenset(block)
    outside = [m for m in range(len(dims)) if m not in block]
    meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
    k_o = sum(structure.rank_of(t) for t in meets)
    edges = [(i, j) for i, m in enumerate(outside) for j, t in enumerate(meets) if m in t]
    rank = _max_flow([dims[m] for m in outside], [structure.rank_of(t) for t in meets],
                     edges)
    return rank, k_o


def require_schur_step(structure: Structure, dims: Sequence[int], block: Any) -> int:
    """``k_O`` of the Schur step for ``block``; raise if the step cannot isolate it.

    Used by the Schur-recursion estimators: the step is exact only when the
    loadings it conditions on have generic full column rank (:func:`schur_rank`).

    Raises
    ------
    NotIdentifiableError
        If the generic column rank is below ``k_O``; the message says which blocks
        lack rows and that the design may still be identifiable.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats._jacobian import require_schur_step
    >>> s = hs.Structure.parse("ABC:1 AB:1 C:1")
    >>> require_schur_step(s, (3, 4, 5), {0, 1})  # k_O = r_ABC + r_C
    2
    >>> try:  # view B has 2 rows for the k_O = 3 columns of AB and B
    ...     require_schur_step(hs.Structure.parse("AB:1 A:1 B:2"), (3, 2), {0})
    ... except hs.exceptions.NotIdentifiableError as exc:
    ...     print(type(exc).__name__)
    NotIdentifiableError
    """
    rank, k_o = schur_rank(structure, dims, block)
    if rank < k_o:
        raise NotIdentifiableError(
            f"block {format_block(block)}: the loadings of the views outside it on "
            f"the blocks meeting them must have full column rank k_O = {k_o} for the "
            f"Schur step; got generic rank {rank} (maximum matching)"
            f"{hall_witness(structure, tuple(dims), frozenset(block))}. The design "
            "may still be identifiable: see hcl_stats.check_identifiable and the "
            "'masked_multistart' estimator (--estimator masked_multistart)."
        )
    return k_o


def hall_witness(structure: Structure, dims, block) -> str:
    """A set of blocks violating Hall's condition (for the failure message)."""
    outside = [m for m in range(len(dims)) if m not in block]
    meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
    best = None
    # greedy over views: the blocks confined (within O) to a set of views
    import itertools

    for size in range(1, len(outside) + 1):
        for views in itertools.combinations(outside, size):
            ts = [t for t in meets if set(t) & set(outside) <= set(views)]
            need = sum(structure.rank_of(t) for t in ts)
            have = sum(dims[m] for m in views)
            if need > have and (best is None or need - have > best[0]):
                best = (need - have, views, ts, need, have)
        if best is not None:
            break
    if best is None:
        return ""
    _, views, ts, need, have = best
    names = ",".join(structure.names[m] for m in views)
    return (
        f"; within O, the blocks {' '.join(format_block(t) for t in ts)} load only on "
        f"views {names}, which have d = {have} rows for {need} columns"
    )


_decide = decide_rank  # the old private name (tests force the shortcuts through it)
