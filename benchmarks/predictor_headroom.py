"""Would a better quality predictor pay? kNN against matrix factorisation, in hindsight.

A matrix factorisation over (request embedding, model) is the form of RouteLLM's
strongest router. This compares it with the router's kNN on what no online router has:
every model's recorded outcome on 4 in 5 of a bundled set's requests (5 folds), each
predicting P(right) for every model on the held-out fifth.

- `task prior`: each model's success rate in the request's task, on the other folds;
- `kNN`: the router's `KNNQualityPredictor`, with the task prior as its prior
  (`bench.baselines.fed_knn`, as `hindsight_knn` feeds it);
- `MF`: the lab's `FactorisedQualityPredictor` (`bench/factorisation.py`),
  P(right) = sigmoid(v_m . (W x) + b_m) over the router's rows x (the request's
  embedding and features, its task included).

It prints each predictor's Brier score (lower is better; 0.25 is a coin) and what
routing on it reaches: each held-out request goes to the model of best predicted utility
under the `balanced` objective, as `sls-router bench --strategies hindsight_knn` does.

    .venv/bin/python benchmarks/predictor_headroom.py overruling humaneval logparsing
"""

from __future__ import annotations

import argparse
from importlib.resources import files

import numpy as np

from sls_router.bench.baselines import Replayer, fed_knn
from sls_router.bench.factorisation import FactorisedQualityPredictor
from sls_router.embeddings import get_embedder
from sls_router.replay import load_dataset
from sls_router.routing import Scheduler, query_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    embedder = get_embedder("minilm")
    for name in args.sets:
        dataset = load_dataset(files("sls_router") / "data" / "replay" / f"{name}.jsonl.gz")
        replayer = Replayer(dataset)
        names = list(dataset.models)
        records = [r for r in dataset if all(m in r.responses for m in names)]
        texts = [r.embed_text for r in records]
        unique = list(dict.fromkeys(texts))
        vectors = dict(zip(unique, embedder.encode(unique)))
        x = np.vstack([vectors[t] for t in texts]).astype(np.float32)
        y = np.array([[r.responses[m].score >= 0.5 for m in names] for r in records], float)
        # the router's rows: the embedding, then the request's features (its task included)
        features = np.hstack(
            [x, np.stack([query_features(t, r.task) for t, r in zip(texts, records)])]
        )
        cost = np.array([[replayer.cost(r, m) for m in names] for r in records])
        penalty = Scheduler(preset="balanced").penalty(
            cost.mean(0), np.array([replayer.mean_latency(m) for m in names])
        )
        fold = np.random.default_rng(args.seed).permutation(len(records)) % args.folds
        predicted = {p: np.zeros_like(y) for p in ("task prior", "kNN", "MF")}
        for f in range(args.folds):
            train = np.flatnonzero(fold != f)
            known = fed_knn([records[i] for i in train], x[train])
            mf = FactorisedQualityPredictor().fit(
                np.repeat(features[train], len(names), axis=0),
                names * len(train),
                y[train].ravel(),
            )
            for i in np.flatnonzero(fold == f):
                rates = known.rates[records[i].task]
                predicted["task prior"][i] = [rates[m] for m in names]
                predicted["kNN"][i] = known.predict(x[i], names, records[i].task).mean
            predicted["MF"][fold == f] = mf.predict(features[fold == f], names)
        print(f"{name}: {len(records):,} requests x {len(names)} models, {args.folds} folds")
        for predictor, p in predicted.items():
            chosen = np.argmax(p - penalty, axis=1)
            rows = np.arange(len(records))
            print(
                f"  {predictor:10s} Brier {np.mean((p - y) ** 2):.4f}; routing on it: "
                f"accuracy {y[rows, chosen].mean():.3f} at ${cost[rows, chosen].sum():.2f}"
            )


if __name__ == "__main__":
    main()
