"""Concurrent single-text embeddings, batched or not: throughput and per-call latency.

C threads each embed their share of short support requests one at a time
(`encode([text])`, as the router does per request), on one shared embedder built with
`batching=True` (concurrent calls coalesced, the default) and with `batching=False`.
Prints texts/s and the p50/p99 of one call's time for each embedder, concurrency and
mode, and checks that the batched vectors match the unbatched ones.

    .venv/bin/python benchmarks/embed_concurrency.py [--embedders onnx,minilm]
        [--concurrency 1,8,32] [--queries 400] [--json OUT]

Not a timed test: the figures depend on the machine and its load (the README records
them with this command).
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

from sls_router.bench.overhead import traffic
from sls_router.embeddings import Embedder, MiniLMEmbedder
from sls_router.onnx_embedder import OnnxEmbedder


def build(name: str, batching: bool) -> Embedder:
    if name == "minilm":  # torch
        return MiniLMEmbedder(backend="torch", batching=batching)
    return OnnxEmbedder("int8" if name == "onnx-int8" else "fp32", batching=batching)


def run(embedder: Embedder, texts: list[str], threads: int) -> tuple[dict, np.ndarray]:
    """Each of `threads` threads embeds every `threads`-th text alone."""
    times: list[float] = []
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    lock = threading.Lock()
    start_all = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        mine = []
        start_all.wait()
        for i in range(k, len(texts), threads):
            start = time.perf_counter()
            vectors[i] = embedder.encode([texts[i]])[0]
            mine.append((time.perf_counter() - start) * 1e3)
        with lock:
            times.extend(mine)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start_all.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    figures = {
        "texts_per_s": round(len(texts) / wall, 1),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
    }
    return figures, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default="onnx,minilm", help="onnx, onnx-int8, minilm")
    parser.add_argument("--concurrency", default="1,8,32", help="thread counts")
    parser.add_argument("--queries", type=int, default=400, help="texts per run")
    parser.add_argument("--json")
    args = parser.parse_args()
    texts = traffic(args.queries, np.random.default_rng(0))
    result: dict[str, dict] = {}
    for name in args.embedders.split(","):
        embedders = {"batched": build(name, True), "unbatched": build(name, False)}
        for embedder in embedders.values():
            embedder.encode(texts[:5])  # warm-up
        for threads in map(int, args.concurrency.split(",")):
            row: dict = {}
            vectors = {}
            for mode, embedder in embedders.items():  # alternated, so load hits both alike
                row[mode], vectors[mode] = run(embedder, texts, threads)
            cos = np.sum(vectors["batched"] * vectors["unbatched"], axis=1)
            row["cos_min_batched_vs_not"] = round(float(cos.min()), 7)
            result[f"{name} x{threads}"] = row
            print(f"{name:9} {threads:3} threads: {json.dumps(row)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"queries": args.queries, **result}, f, indent=2)


if __name__ == "__main__":
    main()
