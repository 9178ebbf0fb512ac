"""Single-query embedding latency and agreement: torch MiniLM vs ONNX Runtime fp32 and int8.

All three embed the same short support requests one at a time, in one process and
interleaved round by round (so a busy neighbour slows all three alike). Reports each
one's p50/p99 in ms and, for the ONNX ones, the cosine of their vectors with torch's
(min and mean). ONNX Runtime uses `--threads` intra-op threads (by default the
embedder's own: one per core, up to 4); torch
keeps its own setting unless `--torch-threads` is given.

    .venv/bin/python benchmarks/onnx_embed.py [--queries 300] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sls_router.bench.overhead import traffic
from sls_router.embeddings import Embedder, MiniLMEmbedder
from sls_router.onnx_embedder import OnnxEmbedder


def _time_one(embedder: Embedder, text: str) -> float:
    start = time.perf_counter()
    embedder.encode([text])
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default: the embedder's)"
    )
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: keep)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    embedders: dict[str, Embedder] = {
        "torch": MiniLMEmbedder(backend="torch"),
        "onnx": OnnxEmbedder("fp32", threads=args.threads),
        "onnx-int8": OnnxEmbedder("int8", threads=args.threads),
    }
    texts = traffic(args.queries, np.random.default_rng(0))
    for embedder in embedders.values():  # warm-up
        embedder.encode(texts[:5])
    times: dict[str, list[float]] = {name: [] for name in embedders}
    for text in texts:
        for name, embedder in embedders.items():
            times[name].append(_time_one(embedder, text))
    reference = embedders["torch"].encode(texts)
    result: dict[str, dict[str, float]] = {}
    for name, embedder in embedders.items():
        cos = np.sum(embedder.encode(texts) * reference, axis=1)
        result[name] = {
            "p50_ms": round(float(np.percentile(times[name], 50)), 2),
            "p99_ms": round(float(np.percentile(times[name], 99)), 2),
            "cos_min": round(float(cos.min()), 6),
            "cos_mean": round(float(cos.mean()), 6),
        }
        print(name, result[name])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"queries": args.queries, "threads": args.threads, **result}, f, indent=2)


if __name__ == "__main__":
    main()
