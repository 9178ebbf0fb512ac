"""`sls-router bench`: replay recorded LLM answers through sls-router and baselines.

Every strategy sees the requests in the same order: file order for seed 0, a seeded
shuffle for the others (seeds.py); figures are means over seeds. sls-router starts
knowing nothing, unless it is given recorded outcomes to learn first (training.py);
feedback is `labels` (the true score of what was served, after each answer),
`verifier` (only what the task's label-free check says), `label-free` (the check, and
second opinions of other models compared with the served answer) or `none`. Accuracy, cost
and time count every request, cached ones included; a cache hit is judged by the
dataset's scorer and counts as wrong when the scorer cannot judge it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from ..embeddings import Embedder, get_embedder
from ..errors import ConfigurationError
from ..replay import ReplayDataset, ReplayRecord, replay_pool
from ..router import SmartRouter
from ..types import Request
from ..verifiers import TaskVerifier
from . import baselines, training
from .seeds import check_seeds, seed_figures, shuffled
from .simulated_judge import SimulatedJudge
from .simulated_users import SimulatedUsers
from .trace import Trace, judge_hit

FEEDBACK_MODES = ("labels", "verifier", "label-free", "none")
CHECKED = ("verifier", "label-free")  # the modes that run the task verifier
SLS_STRATEGIES = ("sls", "sls_no_cache", "sls_no_updates", "sls_cache_best_single")
BASELINES = (
    "random",
    "cheapest",
    "best_single",
    "oracle",
    "cascade",
    "static_knn",
    "hindsight_knn",
)
ORDER_FREE = ("cheapest", "best_single", "oracle", "cascade")


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
    confirm_precision: float | None = None,
    judge_accuracy: float | None = None,
    reask: tuple[float, float] | None = None,
    cache: bool = True,
    models: Sequence[str] | None = None,
    learn_until: int | None = None,
    desc: str = "sls",
    train: Sequence[ReplayRecord] = (),
    default_model: str | None = None,
) -> Trace:
    """Replay through a fresh SmartRouter, after it learned `train` (if any).
    `learn_until`: feedback stops after that many requests and no refit happens
    afterwards (the no-updates ablation). `judge_accuracy`: a judge simulated from the
    labels (simulated_judge.py) grades every answer the spend cap allows. `reask`: users
    simulated from the labels ask again after a wrong / right answer at these rates
    (simulated_users.py). `default_model`: the router's, the model a team runs today."""
    pool = [p for p in replay_pool(dataset) if models is None or p[0].name in models]
    judge = (
        None
        if judge_accuracy is None
        else SimulatedJudge.priced_like(
            max((spec for spec, _ in pool), key=lambda s: s.cost(1, 1)), judge_accuracy, seed
        )
    )
    verifier = TaskVerifier() if feedback in CHECKED else None
    verdicts: list[tuple[str, str, float]] = []  # (request id, source, score) of each verdict
    router = SmartRouter(
        pool,
        embedder=embedder,
        preset=preset,
        confirm_precision=confirm_precision,
        cache=cache,
        verifier=verifier,
        second_opinion=1.0 if feedback == "label-free" else 0.0,
        judge=judge,
        judge_share=1.0,
        on_feedback=lambda rid, _model, _hit, source, score: verdicts.append((rid, source, score)),
        random_state=seed,
        default_model=default_model if any(s.name == default_model for s, _ in pool) else None,
        background_updates=False,
        update_every_n=1000,
        update_every_s=0,
    )
    if train:
        training.warm_start(router, train)
    users = None if reask is None else SimulatedUsers(*reask, seed=seed)
    trace = Trace()
    answered: dict[str, tuple[Any, bool]] = {}  # request id -> (record, judged right)

    def serve(request: Request, record: ReplayRecord, learning: bool) -> tuple[Any, bool, float]:
        """Answer `request`: the response, whether it is right, and what it cost with
        the learning it set off (second opinions, gradings: paid, though they serve none)."""
        spent = router.learner.scheduler.spent_total_usd
        response = router.complete(request)
        router.flush()  # second opinions land before the next request: runs are repeatable
        cost = max(response.cost_usd, router.learner.scheduler.spent_total_usd - spent)
        if response.cache_hit:
            source_id = (response.raw or {}).get("request_id")
            source = answered.get(source_id) if source_id is not None else None
            right = judge_hit(record, response.text, *(source or (None, None)))
        else:
            right = record.responses[response.model].score >= 0.5
        answered[request.id] = (record, right)
        if learning:
            if feedback == "labels":
                router.feedback(response.request_id, float(right), source="label")
            elif feedback in CHECKED and response.cache_hit:
                verdict = TaskVerifier()(request, response.text)
                if verdict is not None:
                    router.feedback(response.request_id, verdict, source="verifier")
        return response, right, cost

    start = time.perf_counter()
    for i, record in enumerate(tqdm(dataset.records, desc=desc, leave=False, mininterval=1)):
        learning = learn_until is None or i < learn_until
        if not learning and router.verifier is not None:
            router.verifier = None
        if learn_until is not None and i == learn_until:
            router.learner.updates.every_n = 0
        request = Request(
            prompt=record.prompt,
            query=record.query,
            task=record.task,
            id=record.id,
            thread=None if users is None else record.id,
        )
        if judge is not None:
            judge.follow(record)
        response, right, cost = serve(request, record, learning)
        if response.cache_hit:
            trace.add(right, cost, 0.0, "cache", hit=True)
        else:
            for model in response.tried:
                if model in record.responses:
                    trace.calls[model] += 1
            trace.add(right, cost, response.latency_s, response.model)
        if users is not None and learning and users.ask_again(record.id, right):
            again = dataclasses.replace(request, id=f"{record.id}/again")
            trace.cost[-1] += serve(again, record, learning)[2]  # paid; the first is scored
        for request_id, origin, score in verdicts:  # the harness knows what the router does not
            trace.add_verdict(origin, score >= 0.5, answered[request_id][1])
        verdicts.clear()
    trace.wall_s = time.perf_counter() - start
    trace.explored_usd = router.learner.scheduler.explored_usd
    router.close()
    return trace


def order_free(name: str) -> bool:
    """Strategies whose answer to a request depends on that record alone: their figures
    are the same in every order, so one run in file order stands for every seed."""
    return name in ORDER_FREE or name.startswith("single:")


@dataclass
class _Setup:
    """What every strategy's run shares, whatever the seed."""

    feedback: str
    preset: str
    confirm_precision: float | None
    judge_accuracy: float | None
    reask: tuple[float, float] | None
    shared: PrecomputedEmbedder | None
    best: str
    cheapest: str
    n_learn: int
    train: list[ReplayRecord]
    default_model: str | None

    @property
    def vectors(self) -> PrecomputedEmbedder:
        """The shared embeddings, built whenever a chosen strategy needs them."""
        if self.shared is None:
            raise RuntimeError("no shared embeddings: run_bench builds them for such strategies")
        return self.shared


def _run_strategy(name: str, data: ReplayDataset, setup: _Setup, seed: int, desc: str) -> Trace:
    """One strategy over `data` in its order, with random state `seed`."""
    start = time.perf_counter()
    replayer = baselines.Replayer(data)
    kw: dict[str, Any] = dict(
        feedback=setup.feedback,
        preset=setup.preset,
        confirm_precision=setup.confirm_precision,
        judge_accuracy=setup.judge_accuracy,
        reask=setup.reask,
        seed=seed,
        desc=desc,
        train=setup.train,
        default_model=setup.default_model,
    )
    if name == "sls":
        trace = run_sls(data, setup.vectors, **kw)
    elif name == "sls_no_cache":
        trace = run_sls(data, setup.vectors, cache=False, **kw)
    elif name == "sls_no_updates":
        trace = run_sls(data, setup.vectors, learn_until=setup.n_learn, **kw)
    elif name == "sls_cache_best_single":
        trace = run_sls(data, setup.vectors, models=[setup.best], **kw)
    elif name.startswith("single:"):
        trace = baselines.single(replayer, name.split(":", 1)[1])
    elif name == "random":
        trace = baselines.random_choice(replayer, seed)
    elif name == "cheapest":
        trace = baselines.single(replayer, setup.cheapest)
    elif name == "best_single":
        trace = baselines.single(replayer, setup.best)
    elif name == "oracle":
        trace = baselines.oracle(replayer)
    elif name == "cascade":
        chain = sorted(replayer.models, key=replayer.mean_cost)
        trace = baselines.cascade(replayer, chain)
    else:  # static_knn, hindsight_knn
        vectors = np.vstack([setup.vectors.vector(r.embed_text) for r in data])
        specs = [spec for spec, _ in replay_pool(data)]
        knn_baseline = baselines.static_knn if name == "static_knn" else baselines.hindsight_knn
        trace = knn_baseline(replayer, vectors, specs, preset=setup.preset, seed=seed)
    if not trace.wall_s:
        trace.wall_s = time.perf_counter() - start
    return trace


def _run_seeds(
    chosen: Sequence[str], scored: ReplayDataset, setup: _Setup, seed: int, seeds: int
) -> dict[str, dict[int, Trace]]:
    """Every strategy on every seed's order: {strategy: {seed: trace}}. Seed s replays
    order s (seeds.seed_order) with random state `seed + s`."""
    fixed = {
        name: _run_strategy(name, scored, setup, seed, name) for name in chosen if order_free(name)
    }
    runs: dict[str, dict[int, Trace]] = {name: {} for name in chosen}
    for s in range(seeds):
        data = shuffled(scored, s)
        for name in chosen:
            desc = name if seeds == 1 else f"{name} (seed {s})"
            runs[name][s] = (
                fixed[name] if name in fixed else _run_strategy(name, data, setup, seed + s, desc)
            )
    return runs


def _chosen(strategies: Sequence[str] | None, replayer: baselines.Replayer) -> list[str]:
    singles = [f"single:{m}" for m in replayer.models]
    known = (*SLS_STRATEGIES, *singles, *BASELINES)
    chosen = list(strategies or known)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ConfigurationError(f"unknown strategies {unknown}; choose from {list(known)}.")
    return chosen


def run_bench(
    dataset: ReplayDataset,
    *,
    feedback: str = "labels",
    embedder: str | Embedder = "minilm",
    preset: str = "balanced",
    confirm_precision: float | None = None,
    judge_accuracy: float | None = None,
    reask: tuple[float, float] | None = None,
    strategies: Sequence[str] | None = None,
    seed: int = 0,
    seeds: int = 1,
    train: ReplayDataset | None = None,
    train_split: float | None = None,
    default_model: str | None = None,
) -> tuple[dict, dict]:
    """Run the chosen strategies over `seeds` orders of the requests.

    Returns (the JSON of DESIGN.md, seed 0's traces by strategy). `train` (another
    replay file) and `train_split` (the first fraction of `dataset`, then not scored)
    are learned by the sls strategies before they serve (training.py). `reask`: users
    simulated from the labels ask again after a wrong / right answer at these rates
    (simulated_users.py). `default_model`: the sls strategies keep it until evidence
    beats it (the model a team runs today)."""
    if feedback not in FEEDBACK_MODES:
        raise ConfigurationError(f"feedback={feedback!r}: use one of {FEEDBACK_MODES}.")
    if judge_accuracy is not None and not 0.0 <= judge_accuracy <= 1.0:
        raise ConfigurationError(
            f"judge_accuracy={judge_accuracy!r}: pass how often the simulated judge is "
            "right, in [0, 1]."
        )
    check_seeds(seeds)
    if reask is not None:
        SimulatedUsers(*reask)  # refuses rates outside [0, 1] before any work
    train_records, scored = training.training_split(dataset, train, train_split)
    replayer = baselines.Replayer(scored)
    if default_model is not None and default_model not in replayer.models:
        raise ConfigurationError(
            f"default_model={default_model!r} is not a model of {scored.name}: name one of "
            f"{replayer.models}."
        )
    chosen = _chosen(strategies, replayer)
    base = get_embedder(embedder)
    needs_vectors = any(s in SLS_STRATEGIES or s.endswith("_knn") for s in chosen)
    texts = [r.embed_text for r in (*scored, *train_records)]
    shared = PrecomputedEmbedder(base, texts) if needs_vectors else None

    accuracy = {m: replayer.accuracy(m) for m in replayer.models}
    best = max(accuracy, key=accuracy.__getitem__)
    cheapest = min(replayer.models, key=replayer.mean_cost)
    n_learn = max(1, int(len(scored) * 0.02))
    setup = _Setup(
        feedback,
        preset,
        confirm_precision,
        judge_accuracy,
        reask,
        shared,
        best,
        cheapest,
        n_learn,
        train_records,
        default_model,
    )
    runs = _run_seeds(chosen, scored, setup, seed, seeds)
    singles = {f"single:{m}": baselines.single(replayer, m).summary() for m in replayer.models}
    result = {
        "dataset": scored.name,
        "n": len(scored),
        "feedback": feedback,
        "confirm_precision": confirm_precision,
        "judge": None if judge_accuracy is None else f"simulated, accuracy {judge_accuracy:g}",
        "reask": None if reask is None else SimulatedUsers(*reask).describe(),
        "default_model": default_model,
        "embedder": base.name,
        "embed_s": round(shared.embed_s, 2) if shared else 0.0,
        "best_single": best,
        "cheapest": cheapest,
        "seeds": seeds,
        "n_train": len(train_records),
        "strategies": {
            name: seed_figures({s: t.summary() for s, t in by_seed.items()}, singles)
            for name, by_seed in runs.items()
        },
    }
    return result, {name: by_seed[0] for name, by_seed in runs.items()}
