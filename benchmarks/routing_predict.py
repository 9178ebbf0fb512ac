"""Latency of one routing decision (kNN predict + Scheduler.choose), embedding excluded.

Outcome records are synthetic: unit vectors in 384 dimensions around 2,000 cluster
centres, each labelled with one of 8 models (imbalanced, as a router's traffic is)
and a 0/1 score. Queries are perturbed copies of stored vectors. Reports p50/p99 of
predict alone and of predict + token/latency estimates + choose, and the cost of
one partial_fit once the index is large.

    .venv/bin/python benchmarks/routing_predict.py [--records 100000] [--models 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sls_router.routing import KNNQualityPredictor, LatencyPredictor, Scheduler, TokenCostPredictor
from sls_router.types import ModelSpec


def measure(records: int, n_models: int, queries: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    dim = 384
    centres = rng.standard_normal((2000, dim))
    x = centres[rng.integers(0, len(centres), records)] + 0.35 * rng.standard_normal((records, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    names = [f"model-{i}" for i in range(n_models)]
    share = rng.dirichlet(np.ones(n_models))  # some models are used far more than others
    models = [names[i] for i in rng.choice(n_models, records, p=share)]
    scores = rng.integers(0, 2, records).astype(float)
    specs = [ModelSpec(name, 0.1 * 2**i, 0.2 * 2**i) for i, name in enumerate(names)]

    start = time.perf_counter()
    knn = KNNQualityPredictor().fit(x, models, scores)
    fit_s = time.perf_counter() - start
    tokens, latency = TokenCostPredictor(), LatencyPredictor()
    scheduler = Scheduler(random_state=seed)

    picks = rng.integers(0, records, queries)
    q = x[picks] + 0.02 * rng.standard_normal((queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    predict_t, decide_t = [], []
    for v in q:
        t0 = time.perf_counter()
        p = knn.predict(v, names)
        t1 = time.perf_counter()
        out = [tokens.predict(s.name) for s in specs]
        cost = [tokens.cost(s, 500) for s in specs]
        lat = [latency.predict(s.name, n) for s, n in zip(specs, out)]
        scheduler.choose(specs, p.mean, p.std, cost, lat, now=0.0)
        t2 = time.perf_counter()
        predict_t.append(t1 - t0)
        decide_t.append(t2 - t0)
    add_t = []
    for v in q[:200]:
        t0 = time.perf_counter()
        knn.partial_fit(v, names[0], 1.0)
        add_t.append(time.perf_counter() - t0)
    ms = lambda a, pct: round(float(np.percentile(a, pct)) * 1e3, 3)  # noqa: E731
    return {
        "records": records,
        "models": n_models,
        "index": knn._index.kind,
        "fit_s": round(fit_s, 2),
        "predict_p50_ms": ms(predict_t, 50),
        "predict_p99_ms": ms(predict_t, 99),
        "predict_choose_p50_ms": ms(decide_t, 50),
        "predict_choose_p99_ms": ms(decide_t, 99),
        "partial_fit_p50_ms": ms(add_t, 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [measure(n, args.models, args.queries) for n in args.records]
    for row in results:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
