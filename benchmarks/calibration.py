"""How well does each quality predictor know P(right), request by request?

A router is only as good as its estimate of each model's chance of being right on
this request. This replays a bundled set in order, with label feedback, through a
router. Before each request that the cache does not answer, it asks every quality
predictor for every model's P(right). It then scores the predictions against what
each model really did on that request (the replay records every model's answer, so
the unserved ones are known too):

- `task prior`: per-task success rates shrunk toward the global ones (`TaskPriors`);
- `kNN`: the similarity-weighted neighbours, with the task prior as prior, then the
  outcomes recorded on the request itself (`KNNPrediction.on_this_request`);
- `logistic`: the per-model regressions, where fitted (elsewhere the kNN's value);
- `served blend`: what the router decides on.

It prints the Brier score of each (lower is better; 0.25 is a coin), over every model
and over the served model alone, and a reliability table (predicted P(right) in bins
against the observed rate) for the blend. Nothing
is tuned from these figures: they say which predictors earn their cost.

    .venv/bin/python benchmarks/calibration.py overruling logparsing humaneval --seeds 3
"""

from __future__ import annotations

import argparse
from importlib.resources import files

import numpy as np

from sls_router import Request, SmartRouter
from sls_router.bench.replay_bench import PrecomputedEmbedder
from sls_router.bench.seeds import shuffled
from sls_router.embeddings import get_embedder
from sls_router.replay import ReplayDataset, load_dataset, replay_pool
from sls_router.routing.features import query_features, task_key

PREDICTORS = ("task prior", "kNN", "logistic", "served blend")
BINS = np.linspace(0.0, 1.0, 6)


def predictions(router: SmartRouter, request: Request, names: list[str]) -> dict[str, np.ndarray]:
    """Every predictor's P(right) for every model on `request`, from the router's state
    (computed beside the router, so that asking changes nothing it learns)."""
    learner = router.learner
    vector = router.embedder.encode([request.embed_text])[0]
    features = query_features(request.embed_text, request.task)
    prior = learner.priors.means(task_key(features), names)
    near = learner.knn.predict(vector, names, priors=dict(zip(names, prior.tolist())))
    x = np.hstack([vector, features])
    logistic = learner.logistic.predict(x, names) if learner.logistic.estimators_ else near.mean
    logistic = np.where(np.isnan(logistic), near.mean, logistic)
    blend = near.on_this_request(learner.logistic.blend(near.mean, x, names)).mean
    knn = near.on_this_request(near.mean).mean
    return {"task prior": prior, "kNN": knn, "logistic": logistic, "served blend": blend}


def replay(dataset: ReplayDataset, embedder: PrecomputedEmbedder, seed: int) -> dict:
    """(predictions, truth) rows of every request the router routed (cache hits skipped)."""
    router = SmartRouter(
        replay_pool(dataset),
        embedder=embedder,
        random_state=seed,
        background_updates=False,
        update_every_n=1000,
        update_every_s=0,
    )
    names = list(router.specs)
    predicted: dict[str, list[np.ndarray]] = {p: [] for p in PREDICTORS}
    truth: list[np.ndarray] = []
    served: list[int] = []
    for record in dataset.records:
        request = Request(prompt=record.prompt, query=record.query, task=record.task, id=record.id)
        before = predictions(router, request, names)
        response = router.complete(request)
        if response.cache_hit:
            continue  # no routing decision was made
        for name, values in before.items():
            predicted[name].append(values)
        truth.append(np.array([record.responses[m].score >= 0.5 for m in names], float))
        served.append(names.index(response.model))
        right = record.responses[response.model].score >= 0.5
        router.feedback(response.request_id, float(right), source="label")
    router.close()
    return {p: np.vstack(v) for p, v in predicted.items()} | {
        "truth": np.vstack(truth),
        "served": np.array(served),
    }


def reliability(p: np.ndarray, y: np.ndarray) -> str:
    """Predicted P(right) per bin against the observed rate, and the count."""
    cells = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        inside = (p >= lo) & ((p < hi) | (hi == 1.0))
        if inside.any():
            cells.append(
                f"[{lo:.1f},{hi:.1f}): {p[inside].mean():.2f} vs {y[inside].mean():.2f}"
                f" (n={int(inside.sum())})"
            )
    return "; ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--embedder", default="minilm")
    args = parser.parse_args()
    for name in args.sets:
        dataset = load_dataset(files("sls_router") / "data" / "replay" / f"{name}.jsonl.gz")
        embedder = PrecomputedEmbedder(get_embedder(args.embedder), [r.embed_text for r in dataset])
        briers: dict[str, list[float]] = {p: [] for p in PREDICTORS}
        chosen: dict[str, list[float]] = {p: [] for p in PREDICTORS}
        for seed in range(args.seeds):
            rows = replay(shuffled(dataset, seed), embedder, seed)
            y = rows["truth"]
            at = (np.arange(len(y)), rows["served"])
            for predictor in PREDICTORS:
                briers[predictor].append(float(np.mean((rows[predictor] - y) ** 2)))
                chosen[predictor].append(float(np.mean((rows[predictor][at] - y[at]) ** 2)))
            if seed == 0:
                blend = rows["served blend"].ravel()
                print(
                    f"{name} (seed 0, {len(y)} routed requests x {y.shape[1]} models): "
                    f"reliability of the blend: {reliability(blend, y.ravel())}"
                )
        for predictor in PREDICTORS:
            every, served = briers[predictor], chosen[predictor]
            print(
                f"  {predictor:13s} Brier, every model: mean {np.mean(every):.4f} (worst "
                f"{max(every):.4f}); the served model: mean {np.mean(served):.4f} (worst "
                f"{max(served):.4f}), over {args.seeds} seed(s)"
            )


if __name__ == "__main__":
    main()
