"""The vector index: FAISS inner-product search, exact while small, HNSW once flat search
gets slow. The cache keeps one per scope (cache/entries.py); the kNN quality predictor keeps
one over its outcomes (routing/predictors.py).

Measured here (2 cores, 384-d): exact inner-product search takes ~1 ms at 10,000
vectors and ~16 ms at 100,000; HNSW (M=32) stays under 1 ms at 100,000. HNSW cannot
delete, so removed ids become tombstones, and the graph is rebuilt once tombstones
pass a quarter of it; a flat index batches its removals the same way (a flat removal
copies the whole index).

Searches skip tombstones inside FAISS (a bitmap of live positions passed as an
`IDSelectorBitmap`) rather than fetching ``k + tombstones`` results and filtering
them afterwards: that made a search cost grow with the tombstones (HNSW widens its
beam to the number of results asked for: 0.06 ms for 10 results, 0.17 ms for 1,010,
at 100,000 entries) up to ~25,000 results per lookup before a rebuild.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["SAME_TEXT_DISTANCE", "SAME_TEXT_SIMILARITY", "VectorIndex"]

SAME_TEXT_DISTANCE = 5e-3
"""Two unit vectors closer than this are the same text: a float32 inner product of a unit
vector with itself lands anywhere within a few ulps of 1 (1 - 1e-6 gives a distance of
1.4e-3), and which way it rounds depends on the embedder's last bit (torch or ONNX
Runtime). The cache and the kNN quality predictor both use this one rule."""
SAME_TEXT_SIMILARITY = 1.0 - SAME_TEXT_DISTANCE**2 / 2.0
"""The cosine similarity at `SAME_TEXT_DISTANCE` on the unit sphere."""


class VectorIndex:
    """Inner-product search over unit vectors with int64 ids and removal."""

    def __init__(
        self, dim: int, *, hnsw_min_entries: int = 10_000, hnsw_m: int = 32, ef_search: int = 128
    ) -> None:
        self.dim = dim
        self.hnsw_min_entries = hnsw_min_entries
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self._reset(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), hnsw=False)

    def _reset(self, index: faiss.IndexIDMap2, *, hnsw: bool) -> None:
        self._index, self._hnsw = index, hnsw
        self._inner = index.index  # searched directly: it answers with positions
        self._dead: set[int] = set()
        n = index.ntotal
        # position -> id (the inner index returns positions), id -> position once removals
        # start, and a bit per position (1 = live) that searches pass to FAISS as a selector
        self._ids = (
            faiss.vector_to_array(index.id_map).astype(np.int64)
            if n
            else np.zeros(0, dtype=np.int64)
        )
        self._pos: dict[int, int] | None = None
        self._live = np.zeros(0, dtype=np.uint8)
        self._params: faiss.SearchParameters | None = None
        self._sel: faiss.IDSelector | None = None

    def __len__(self) -> int:
        return self._index.ntotal - len(self._dead)

    @property
    def kind(self) -> str:
        return "hnsw" if self._hnsw else "flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        start = self._index.ntotal
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._ids = _grow(self._ids, start + len(ids))
        self._ids[start : start + len(ids)] = ids
        if self._pos is not None:
            self._pos.update(zip(ids.tolist(), range(start, start + len(ids))))
        if self._dead:
            self._mark_live(start, start + len(ids))
        if not self._hnsw and self._index.ntotal >= self.hnsw_min_entries:
            self._rebuild(use_hnsw=True)

    def remove(self, ids: list[int]) -> None:
        if self._pos is None:
            n = self._index.ntotal
            self._pos = dict(zip(self._ids[:n].tolist(), range(n)))
        if not self._dead:
            self._mark_live(0, self._index.ntotal)
        for i in ids:
            i = int(i)
            pos = self._pos.get(i)
            if pos is not None and i not in self._dead:
                self._dead.add(i)
                self._live[pos >> 3] &= ~np.uint8(1 << (pos & 7))
        # a flat index copies itself on every removal (measured: ~1.8 ms per eviction at
        # 5,000 512-d entries, most of a full cache's insert time): batch them as tombstones
        limit = self._index.ntotal // 4 if self._hnsw else max(64, self._index.ntotal // 16)
        if len(self._dead) > limit:
            self._rebuild(use_hnsw=len(self) >= self.hnsw_min_entries)

    def _mark_live(self, start: int, stop: int) -> None:
        """Set the live bits of positions [start, stop), growing the bitmap if needed."""
        nbytes = (stop + 7) >> 3
        if len(self._live) < nbytes:
            grown = np.zeros(max(nbytes, 2 * len(self._live), 64), dtype=np.uint8)
            grown[: len(self._live)] = self._live
            self._live, self._params = grown, None  # the selector points at the old buffer
        for pos in range(start, min(stop, (start + 7) & ~7)):  # the partial first byte
            self._live[pos >> 3] |= np.uint8(1 << (pos & 7))
        first = (start + 7) >> 3
        full = stop >> 3
        if full > first:
            self._live[first:full] = 0xFF
        for pos in range(max(full << 3, start), stop):  # the partial last byte
            self._live[pos >> 3] |= np.uint8(1 << (pos & 7))

    def _search_params(self) -> faiss.SearchParameters:
        if self._params is None:
            sel = faiss.IDSelectorBitmap(len(self._live), faiss.swig_ptr(self._live))
            params: faiss.SearchParameters
            if self._hnsw:
                # SearchParametersHNSW exists in faiss but is missing from its stubs
                hnsw_params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
                hnsw_params.efSearch = self.ef_search
                params = hnsw_params
            else:
                params = faiss.SearchParameters()
            params.sel = sel
            self._params, self._sel = params, sel  # the params do not own the selector
        return self._params

    def search_arrays(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids (int64) and cosine similarities (float64) of the k nearest live vectors,
        best first, as arrays: the hot paths of the cache and the kNN predictor use this."""
        live = self._index.ntotal - len(self._dead)
        if live == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        query = vector.reshape(1, -1).astype(np.float32, copy=False)
        params = self._search_params() if self._dead else None
        # one query gains nothing from OpenMP threads and loses much when the cores are busy
        # (measured on 2 cores: HNSW search at 20,000 entries 0.5 ms single-threaded, 1.4 to
        # 8 ms with 2 threads while another process runs); the setting is per calling thread
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            sims, pos = self._inner.search(query, min(k, live), params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        pos = pos[0]
        keep = pos >= 0
        if not keep.all():
            pos, sims = pos[keep], sims[:, keep]
        return self._ids[pos], sims[0].astype(np.float64)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest live ids with their cosine similarity, best first."""
        ids, sims = self.search_arrays(vector, k)
        return list(zip(ids.tolist(), sims.tolist()))

    def vectors(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def _live_ids(self) -> np.ndarray:
        all_ids = self._ids[: self._index.ntotal]
        if not self._dead:
            return all_ids.copy()
        return all_ids[~np.isin(all_ids, np.fromiter(self._dead, dtype=np.int64))]

    def _rebuild(self, *, use_hnsw: bool) -> None:
        ids = self._live_ids()
        vecs = self.vectors(ids.tolist())
        inner: faiss.Index
        if use_hnsw:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            index.add_with_ids(vecs, ids)
        self._reset(index, hnsw=use_hnsw)


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with room for n items (capacity doubles, so appends are amortised O(1))."""
    return a if len(a) >= n else np.resize(a, max(n, 2 * len(a), 64))
