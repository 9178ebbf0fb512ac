"""Lookup latency of SemanticCache (embedding excluded) as the entry count grows.

Vectors are synthetic: unit vectors in 384 dimensions drawn around 2,000 cluster
centres (like many paraphrases of fewer questions), queries are perturbed copies of
stored entries. Reports p50/p99 per lookup and, for the approximate (HNSW) index,
recall@1 against exact search on the same vectors.

    .venv/bin/python benchmarks/cache_lookup.py [--sizes 1000 10000 100000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from sls_router.cache import SemanticCache


class _Precomputed:
    """Stands in for an embedder: the benchmark passes vectors, never text to embed."""

    name = "precomputed"
    dim = 384

    def encode(self, texts):
        raise RuntimeError("this benchmark passes vectors explicitly")


def _vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, 384))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def measure(size: int, queries: int, rng: np.random.Generator) -> dict:
    centres = rng.standard_normal((2000, 384))
    data = _vectors(size, rng, centres)
    cache = SemanticCache(_Precomputed(), capacity=size)
    start = time.perf_counter()
    for i in tqdm(range(size), desc=f"insert {size:,}", leave=False, mininterval=5):
        cache.insert(f"q{i}", f"a{i}", vector=data[i])
    insert_s = time.perf_counter() - start
    picks = rng.integers(0, size, queries)
    noisy = data[picks] + 0.02 * rng.standard_normal((queries, 384)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    exact = np.argmax(noisy @ data.T, axis=1) + 1  # entry ids start at 1, in insertion order
    times, found = [], 0
    for q, best in zip(noisy, exact):
        t = time.perf_counter()
        result = cache.lookup("q", vector=q)
        times.append(time.perf_counter() - t)
        found += result.candidate_id == best
    return {
        "entries": size,
        "index": "hnsw" if size >= cache.hnsw_min_entries else "flat",  # as VectorIndex picks
        "insert_s": round(insert_s, 2),
        "lookup_p50_ms": round(float(np.percentile(times, 50)) * 1e3, 3),
        "lookup_p99_ms": round(float(np.percentile(times, 99)) * 1e3, 3),
        "recall_at_1": found / queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [measure(size, args.queries, rng) for size in args.sizes]
    for row in rows:
        print(
            f"{row['entries']:>8,} entries ({row['index']}): "
            f"lookup p50 {row['lookup_p50_ms']:.3f} ms"
            f", p99 {row['lookup_p99_ms']:.3f} ms, recall@1 {row['recall_at_1']:.3f}"
            f", insert all {row['insert_s']:.1f} s"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
