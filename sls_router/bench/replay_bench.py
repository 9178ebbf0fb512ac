"""`sls-router bench`: replay recorded LLM answers through sls-router and baselines.

Every strategy sees the requests in file order. sls-router starts knowing nothing;
feedback is `labels` (the true score of what was served, after each answer),
`verifier` (only what the task's label-free check says) or `none`. Accuracy, cost
and time count every request, cached ones included; a cache hit is judged by the
dataset's scorer and counts as wrong when the scorer cannot judge it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from ..embeddings import Embedder, get_embedder
from ..errors import ConfigurationError
from ..replay import ReplayDataset, replay_pool
from ..router import SmartRouter
from ..types import Request
from ..verifiers import TaskVerifier
from . import baselines
from .trace import Trace, judge_hit

FEEDBACK_MODES = ("labels", "verifier", "none")
SLS_STRATEGIES = ("sls", "sls_no_cache", "sls_no_updates", "sls_cache_best_single")
BASELINES = ("random", "cheapest", "best_single", "oracle", "cascade", "static_knn")


class PrecomputedEmbedder:
    """Embeds every text of the replay once, in batches, and serves lookups after:
    all sls variants share one embedding pass (its time is reported separately)."""

    def __init__(self, base: Embedder, texts: Sequence[str], batch: int = 2048) -> None:
        self.base = base
        self.name = base.name
        self.dim = base.dim
        unique = list(dict.fromkeys(texts))
        start = time.perf_counter()
        parts = []
        with tqdm(total=len(unique), desc=f"embedding ({base.name})", leave=False) as bar:
            for i in range(0, len(unique), batch):
                parts.append(base.encode(unique[i : i + batch]))
                bar.update(len(parts[-1]))
        vectors = np.vstack(parts) if parts else np.zeros((0, base.dim), np.float32)
        self.embed_s = time.perf_counter() - start
        self._rows = {t: i for i, t in enumerate(unique)}
        self._vectors = vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        try:
            rows = [self._rows[t] for t in texts]
        except KeyError:  # a text not of the replay
            return self.base.encode(list(texts))
        return self._vectors[rows]

    def vector(self, text: str) -> np.ndarray:
        return self._vectors[self._rows[text]]


def run_sls(
    dataset: ReplayDataset,
    embedder: PrecomputedEmbedder,
    *,
    feedback: str,
    preset: str,
    seed: int,
    cache: bool = True,
    models: Sequence[str] | None = None,
    learn_until: int | None = None,
    desc: str = "sls",
) -> Trace:
    """Replay through a fresh SmartRouter. `learn_until`: feedback stops after that many
    requests and no refit happens afterwards (the no-updates ablation)."""
    pool = [p for p in replay_pool(dataset) if models is None or p[0].name in models]
    verifier = TaskVerifier() if feedback == "verifier" else None
    router = SmartRouter(
        pool,
        embedder=embedder,
        preset=preset,
        cache=cache,
        verifier=verifier,
        random_state=seed,
        background_updates=False,
        update_every_n=1000,
        update_every_s=0,
    )
    trace = Trace()
    answered: dict[str, tuple[Any, bool]] = {}  # request id -> (record, judged right)
    start = time.perf_counter()
    for i, record in enumerate(tqdm(dataset.records, desc=desc, leave=False, mininterval=1)):
        learning = learn_until is None or i < learn_until
        if not learning and router.verifier is not None:
            router.verifier = None
        if learn_until is not None and i == learn_until:
            router.learner.updates.every_n = 0
        request = Request(prompt=record.prompt, query=record.query, task=record.task, id=record.id)
        response = router.complete(request)
        if response.cache_hit:
            source_id = (response.raw or {}).get("request_id")
            source = answered.get(source_id) if source_id is not None else None
            right = judge_hit(record, response.text, *(source or (None, None)))
            trace.add(right, 0.0, 0.0, "cache", hit=True)
        else:
            right = record.responses[response.model].score >= 0.5
            for model in response.tried:
                if model in record.responses:
                    trace.calls[model] += 1
            trace.add(right, response.cost_usd, response.latency_s, response.model)
        answered[record.id] = (record, right)
        if not learning:
            continue
        if feedback == "labels":
            router.feedback(response.request_id, float(right), source="label")
        elif feedback == "verifier" and response.cache_hit:
            verdict = TaskVerifier()(request, response.text)
            if verdict is not None:
                router.feedback(response.request_id, verdict, source="verifier")
    trace.wall_s = time.perf_counter() - start
    router.close()
    return trace


def run_bench(
    dataset: ReplayDataset,
    *,
    feedback: str = "labels",
    embedder: str | Embedder = "minilm",
    preset: str = "balanced",
    strategies: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Run the chosen strategies; returns (the JSON of DESIGN.md, traces by strategy)."""
    if feedback not in FEEDBACK_MODES:
        raise ConfigurationError(f"feedback={feedback!r}: use one of {FEEDBACK_MODES}.")
    replayer = baselines.Replayer(dataset)
    singles = [f"single:{m}" for m in replayer.models]
    known = (*SLS_STRATEGIES, *singles, *BASELINES)
    chosen = list(strategies or known)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ConfigurationError(f"unknown strategies {unknown}; choose from {list(known)}.")
    base = get_embedder(embedder)
    texts = [r.embed_text for r in dataset]
    needs_vectors = any(s in SLS_STRATEGIES or s == "static_knn" for s in chosen)
    shared = PrecomputedEmbedder(base, texts) if needs_vectors else None

    def precomputed() -> PrecomputedEmbedder:
        assert shared is not None  # made whenever a chosen strategy needs vectors
        return shared

    accuracy = {m: replayer.accuracy(m) for m in replayer.models}
    best = max(accuracy, key=accuracy.__getitem__)
    cheapest = min(replayer.models, key=replayer.mean_cost)
    n_learn = max(1, int(len(dataset) * 0.02))
    traces: dict[str, Trace] = {}
    for name in chosen:
        start = time.perf_counter()
        kw: dict[str, Any] = dict(feedback=feedback, preset=preset, seed=seed, desc=name)
        if name == "sls":
            trace = run_sls(dataset, precomputed(), **kw)
        elif name == "sls_no_cache":
            trace = run_sls(dataset, precomputed(), cache=False, **kw)
        elif name == "sls_no_updates":
            trace = run_sls(dataset, precomputed(), learn_until=n_learn, **kw)
        elif name == "sls_cache_best_single":
            trace = run_sls(dataset, precomputed(), models=[best], **kw)
        elif name.startswith("single:"):
            trace = baselines.single(replayer, name.split(":", 1)[1])
        elif name == "random":
            trace = baselines.random_choice(replayer, seed)
        elif name == "cheapest":
            trace = baselines.single(replayer, cheapest)
        elif name == "best_single":
            trace = baselines.single(replayer, best)
        elif name == "oracle":
            trace = baselines.oracle(replayer)
        elif name == "cascade":
            chain = sorted(replayer.models, key=replayer.mean_cost)
            trace = baselines.cascade(replayer, chain)
        else:  # static_knn
            embedded = precomputed()
            vectors = np.vstack([embedded.vector(t) for t in texts])
            specs = [spec for spec, _ in replay_pool(dataset)]
            trace = baselines.static_knn(replayer, vectors, specs, preset=preset, seed=seed)
        if not trace.wall_s:
            trace.wall_s = time.perf_counter() - start
        traces[name] = trace
    result = {
        "dataset": dataset.name,
        "n": len(dataset),
        "feedback": feedback,
        "embedder": base.name,
        "embed_s": round(shared.embed_s, 2) if shared else 0.0,
        "best_single": best,
        "cheapest": cheapest,
        "strategies": {name: trace.summary() for name, trace in traces.items()},
    }
    return result, traces
