"""`sls-router stress`: the router's reliability and security properties, measured.

A router sits in the path of every LLM call of an application, so it must keep
answering when providers fail, count every piece of feedback under concurrency, survive
being killed while saving, keep tenants apart and refuse hostile input without losing
what it stored. Each scenario here returns the figures that show one of these; the
kill -9 trials live in `stress_kill9.py` and the hostile inputs in `stress_inputs.py`.
Everything is seeded; only timings (and which generation a kill lands in) vary.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..backends import CallableBackend, StreamChunk
from ..cache import SemanticCache
from ..errors import BackendError, SLSRouterError, UnknownEntryError
from ..router import SmartRouter
from ..types import Completion, ModelSpec, Request, Response, Usage

# "full" is the size (8 threads x 1,000 and 100 tasks x 1,000 requests, RSS over
# 100,000 requests); "default" finishes in about a minute on 2 shared cores.
SIZES: dict[str, dict[str, int]] = {
    "quick": dict(
        fault_requests=300,
        threads=4,
        per_thread=100,
        tasks=20,
        per_task=50,
        kill9_trials=5,
        tenants=8,
        tenant_texts=15,
        rss_requests=3000,
        rss_capacity=1000,
    ),
    "default": dict(
        fault_requests=1500,
        threads=8,
        per_thread=250,
        tasks=100,
        per_task=40,
        kill9_trials=20,
        tenants=20,
        tenant_texts=40,
        rss_requests=20_000,
        rss_capacity=5000,
    ),
    "full": dict(
        fault_requests=5000,
        threads=8,
        per_thread=1000,
        tasks=100,
        per_task=1000,
        kill9_trials=50,
        tenants=50,
        tenant_texts=100,
        rss_requests=100_000,
        rss_capacity=5000,
    ),
}
FAULT_KINDS = ("raise", "timeout", "rate_limit", "empty")
_WORDS = (
    "refund",
    "invoice",
    "login",
    "backup",
    "cluster",
    "latency",
    "webhook",
    "quota",
    "password",
    "migration",
    "currency",
    "search",
    "export",
    "billing",
    "cache",
    "vpn",
)


def stable_hash(key: str) -> int:
    """A hash that is the same in every process (Python's `hash` is salted)."""
    return int.from_bytes(
        hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def rss_mb() -> float:
    """Resident memory of this process (Linux /proc; ru_maxrss, a peak, elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _entries(router: SmartRouter) -> int:
    """How many entries the router's cache holds (every router here has a cache)."""
    assert router.cache is not None
    return len(router.cache)


def _ms(values: list[float] | np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e3, 3) if len(values) else math.nan


def _text(rng: np.random.Generator, tag: str) -> str:
    words = " ".join(rng.choice(_WORDS, 4))
    return f"{tag}: {words} #{int(rng.integers(1_000_000))}"


# -- backend faults -------------------------------------------------------------------
class RateLimitError(Exception):
    """What a provider SDK raises on HTTP 429, carrying the back-off it asks for."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("429 too many requests")
        self.retry_after = retry_after


class FaultyModel:
    """A fake provider that fails a seeded share of calls in one of FAULT_KINDS.

    Whether a call fails depends only on (seed, model, prompt), not on thread timing.
    `billed` is the provider's own ledger (request id -> USD) of the calls it answered,
    empty answers included; calls that raised or timed out bill nothing."""

    def __init__(
        self,
        name: str,
        fault_rate: float,
        *,
        seed: int = 0,
        timeout_s: float = 0.05,
        retry_after_s: float = 0.1,
        cost_usd: float = 1e-4,
    ) -> None:
        self.name, self.fault_rate, self.seed = name, fault_rate, seed
        self.timeout_s, self.retry_after_s, self.cost_usd = timeout_s, retry_after_s, cost_usd
        self.billed: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def fault(self, request: Request) -> str | None:
        h = stable_hash(f"{self.seed}/{self.name}/{request.text}")
        if (h % 10_000) / 10_000 >= self.fault_rate:
            return None
        return FAULT_KINDS[(h // 10_000) % len(FAULT_KINDS)]

    def _start(self, request: Request) -> str | None:
        kind = self.fault(request)
        with self._lock:
            self.calls[kind or "ok"] += 1
        if kind == "raise":
            raise RuntimeError(f"{self.name}: 503 service unavailable")
        if kind == "rate_limit":
            raise RateLimitError(self.retry_after_s)
        return kind

    def _answer(self, request: Request, kind: str | None) -> Completion:
        text = "" if kind == "empty" else f"{self.name}: {request.embed_text[:60]}"
        with self._lock:
            self.billed[request.id] += self.cost_usd
        return Completion(text, Usage(20, 0 if kind == "empty" else 10), cost_usd=self.cost_usd)

    def complete(self, request: Request) -> Completion:
        kind = self._start(request)
        if kind == "timeout":  # the router stops waiting at timeout_s; this call bills nothing
            time.sleep(self.timeout_s * 3)
            raise TimeoutError(f"{self.name}: read timed out")
        return self._answer(request, kind)

    async def acomplete(self, request: Request) -> Completion:
        kind = self._start(request)
        if kind == "timeout":
            await asyncio.sleep(self.timeout_s * 3)
            raise TimeoutError(f"{self.name}: read timed out")
        return self._answer(request, kind)

    def backend(self) -> CallableBackend:
        return CallableBackend(self.complete, self.acomplete)

    def spec(self, price: float) -> ModelSpec:
        return ModelSpec(self.name, price, price, timeout_s=self.timeout_s)


def fault_scenario(requests: int = 1500, fault_rate: float = 0.3, seed: int = 0) -> dict:
    """Three models fail `fault_rate` of their calls (raise, time out, rate-limit with a
    retry-after, or answer empty), a fourth stays healthy. Requests come in through
    complete (4 threads), acomplete and stream. Every request must be answered, and the
    cost it reports must equal what the providers billed for it: paid once, never twice."""
    flaky = [FaultyModel(f"flaky-{k}", fault_rate, seed=seed) for k in range(3)]
    steady = FaultyModel("steady", 0.0, seed=seed, timeout_s=1.0)
    models = [*flaky, steady]
    pool = [(m.spec(price), m.backend()) for m, price in zip(models, (0.5, 0.6, 0.7, 5.0))]
    router = SmartRouter(
        pool,
        embedder="hashing",
        cache=False,
        random_state=seed,
        breaker_failures=3,
        breaker_cooldown_s=0.2,
    )
    rng = np.random.default_rng(seed)
    reqs = [Request(prompt=_text(rng, f"fault-{i}"), id=f"fault-{i}") for i in range(requests)]
    n_async, n_stream = requests // 4, requests // 8
    sync_part, async_part = reqs[n_async + n_stream :], reqs[:n_async]
    stream_part = reqs[n_async : n_async + n_stream]
    results: dict[str, Response | Exception] = {}

    def run(call: Callable[[Request], Response], request: Request) -> None:
        try:
            results[request.id] = call(request)
        except Exception as exc:  # counted, never raised: the figure is the point
            results[request.id] = exc

    def streamed(request: Request) -> Response:
        items = list(router.stream(request))
        final = items[-1]
        assert isinstance(final, Response)  # a stream ends with its Response
        if "".join(c.text for c in items if isinstance(c, StreamChunk)) != final.text:
            raise AssertionError("the streamed chunks do not add up to the final text")
        return final

    async def async_all() -> None:
        gate = asyncio.Semaphore(16)

        async def one_async(request: Request) -> None:
            async with gate:
                try:
                    results[request.id] = await router.acomplete(request)
                except Exception as exc:
                    results[request.id] = exc

        await asyncio.gather(*(one_async(r) for r in async_part))

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool_threads:
        futures = [pool_threads.submit(run, router.complete, r) for r in sync_part]
        futures += [pool_threads.submit(run, streamed, r) for r in stream_part]
        asyncio.run(async_all())
        for future in futures:
            future.result()
    wall = time.perf_counter() - started
    answered = [r for r in results.values() if isinstance(r, Response) and r.text.strip()]
    errors = Counter(type(r).__name__ for r in results.values() if isinstance(r, Exception))
    mischarged = sum(
        not math.isclose(
            r.cost_usd,
            sum(m.billed.get(r.request_id, 0.0) for m in models),
            rel_tol=1e-9,
            abs_tol=1e-15,
        )
        for r in answered
    )
    calls: Counter[str] = Counter()
    for m in models:
        calls.update(m.calls)
    status = router.health.status()
    router.close()
    return {
        "requests": requests,
        "fault_rate_per_faulty_model": fault_rate,
        "faulty_models": len(flaky),
        "healthy_models": 1,
        "answered_fraction": round(len(answered) / max(1, requests), 6),
        "errors": dict(errors),
        "mischarged_requests": mischarged,
        "failed_over_requests": sum(len(r.tried) > 1 for r in answered),
        "backend_calls": sum(calls.values()),
        "faults_injected": {k: calls[k] for k in FAULT_KINDS},
        "fault_fraction_of_calls": round(
            sum(calls[k] for k in FAULT_KINDS) / max(1, sum(calls.values())), 4
        ),
        "breaker_opened": {name: s["opened"] for name, s in status.items()},
        "all_fail_error_lists_attempts": _all_fail_lists_attempts(),
        "latency_p50_ms": _ms([r.latency_s for r in answered], 50),
        "wall_s": round(wall, 2),
    }


def _all_fail_lists_attempts() -> bool:
    """When every model fails, one BackendError must name each model's attempt."""
    models = [FaultyModel(f"down-{k}", 1.0, seed=k) for k in range(3)]
    router = SmartRouter(
        [(m.spec(1.0), m.backend()) for m in models],
        embedder="hashing",
        cache=False,
        random_state=0,
    )
    try:
        router.complete("is anybody there?")
    except BackendError as exc:
        return sorted(name for name, _ in exc.attempts) == sorted(m.name for m in models)
    finally:
        router.close()
    return False


# -- load -------------------------------------------------------------------------------
def load_scenario(
    threads: int = 8, per_thread: int = 1000, tasks: int = 100, per_task: int = 1000, seed: int = 0
) -> dict:
    """Threads (complete) and asyncio tasks (acomplete) at once on one router, each
    request followed by its feedback, refits running in the background. Afterwards
    every count must be exact: feedback events, training rows, cache entries."""
    counter = itertools.count()

    def answer(request: Request) -> str:
        return f"answer {next(counter)}: {request.embed_text[:40]}"  # unique answers

    async def aanswer(request: Request) -> str:
        return answer(request)

    pool = [
        (ModelSpec(f"model-{k}", 0.2 * (k + 1), 0.4 * (k + 1)), CallableBackend(answer, aanswer))
        for k in range(3)
    ]
    total = threads * per_thread + tasks * per_task
    cache = SemanticCache("hashing", capacity=total + 1, refit_every=25)
    router = SmartRouter(
        pool,
        embedder=cache.embedder,
        cache=cache,
        random_state=seed,
        update_every_n=500,
        max_pending=total + 1,
    )
    texts = [
        _text(np.random.default_rng(seed + k), f"topic {k % 50}")
        for k in range(max(400, total // 10))
    ]  # repeats: hits and fresh answers mix
    errors: list[str] = []
    lock = threading.Lock()
    tally: Counter[str] = Counter()

    def judge(response: Response) -> float:
        # hits are judged right and 1 in 10 fresh answers wrong: a wrong fresh answer removes
        # exactly its own entry, so the expected entry count is known exactly
        if response.cache_hit:
            return 1.0
        return 0.0 if stable_hash(response.request_id) % 10 == 0 else 1.0

    def count(local: Counter) -> None:
        with lock:
            tally.update(local)

    def step(response: Response, local: Counter) -> None:
        score = judge(response)
        router.feedback(response.request_id, score, source="label")
        local["feedback"] += 1
        local["hits" if response.cache_hit else "fresh"] += 1
        local["fresh_wrong"] += int(not response.cache_hit and score == 0.0)

    def worker(t: int) -> None:
        local: Counter = Counter()
        try:
            for i in range(per_thread):
                text = texts[stable_hash(f"{seed}/t{t}/{i}") % len(texts)]
                step(router.complete(Request(prompt=text, id=f"t{t}-{i}")), local)
        except Exception as exc:
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")
        count(local)

    async def task(k: int) -> None:
        local: Counter = Counter()
        try:
            for i in range(per_task):
                text = texts[stable_hash(f"{seed}/a{k}/{i}") % len(texts)]
                step(await router.acomplete(Request(prompt=text, id=f"a{k}-{i}")), local)
        except Exception as exc:
            errors.append(f"task {k}: {type(exc).__name__}: {exc}")
        count(local)

    async def all_tasks() -> None:
        await asyncio.gather(*(task(k) for k in range(tasks)))

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    asyncio.run(all_tasks())
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    router.learner.updates.wait()
    expected_entries = tally["fresh"] - tally["fresh_wrong"]
    counted = router.learner.updates.total_events
    result = {
        "threads": threads,
        "per_thread": per_thread,
        "tasks": tasks,
        "per_task": per_task,
        "requests": tally["hits"] + tally["fresh"],
        "errors": len(errors),
        "error_examples": errors[:3],
        "feedback_sent": tally["feedback"],
        "feedback_counted": counted,
        "feedback_lost": max(0, tally["feedback"] - counted),
        "feedback_double_counted": max(0, counted - tally["feedback"]),
        "outcomes": len(router.learner.outcomes),
        "outcomes_expected": tally["fresh"],
        "knn_records": router.learner.knn.n_records_,
        "cache_entries": _entries(router),
        "cache_entries_expected": expected_entries,
        "cache_hits": tally["hits"],
        "refits": len(router.learner.updates.log),
        "wall_s": round(wall, 2),
        "requests_per_s": round((tally["hits"] + tally["fresh"]) / wall, 1),
    }
    result["consistent"] = (
        result["outcomes"] == result["outcomes_expected"] == result["knn_records"]
        and result["cache_entries"] == expected_entries
        and counted == tally["feedback"]
        and not errors
    )
    router.close()
    return result


# -- tenants ----------------------------------------------------------------------------
TRICKY_NAMESPACES = (
    "acme",
    "acme ",
    "Acme",
    "acme:1",
    "acme:",
    "a:cme",
    "ünï",
    "租户",
    "default",
    "x" * 300,
)


def tenant_scenario(
    tenants: int = 20, texts: int = 40, rounds: int = 3, seed: int = 0, embedder: str = "hashing"
) -> dict:
    """Many namespaces send the same texts and their backend answers differ per tenant:
    a served answer naming another tenant is a cross-tenant hit. Feedback naming another
    tenant and forged request ids must be refused and must change nothing."""
    namespaces = list(TRICKY_NAMESPACES) + [f"tenant-{k}" for k in range(tenants)]
    namespaces = namespaces[: max(tenants, 2)]

    def answer(request: Request) -> str:  # names its tenant unambiguously
        return json.dumps([request.namespace, request.embed_text], ensure_ascii=False)

    pool = [
        (ModelSpec("model-a", 1, 1), CallableBackend(answer)),
        (ModelSpec("model-b", 2, 2), CallableBackend(answer)),
    ]
    router = SmartRouter(pool, embedder=embedder, random_state=seed, background_updates=False)
    rng = np.random.default_rng(seed)
    shared = [_text(rng, f"question {k}") for k in range(texts)]
    served: list[tuple[str, Response]] = []
    cross = hits = 0
    for r in range(rounds):
        for ns in namespaces:
            for k, text in enumerate(shared):
                if (k + r) % 2:
                    request = Request(prompt=text, namespace=ns)
                else:  # the same text as a chat turn under the same system prompt
                    request = Request(
                        messages=[
                            {"role": "system", "content": "Be brief."},
                            {"role": "user", "content": text},
                        ],
                        namespace=ns,
                    )
                response = router.complete(request)
                cross += json.loads(response.text)[0] != ns
                hits += response.cache_hit
                served.append((ns, response))
    rejected = tried = 0
    before = _entries(router), len(router.learner.outcomes)
    for i, (ns, response) in enumerate(served[:: max(1, len(served) // 200)]):
        other = namespaces[
            (namespaces.index(ns) + 1 + i % (len(namespaces) - 1)) % len(namespaces)
        ]  # never ns itself
        for request_id, namespace in (
            (response.request_id, other),
            (response.request_id[::-1], ns),
            (f"{int(rng.integers(1 << 62)):032x}", None),
        ):
            tried += 1
            try:
                router.feedback(request_id, 0.0, namespace=namespace)
            except UnknownEntryError:
                rejected += 1
    unchanged = (_entries(router), len(router.learner.outcomes)) == before
    router.close()
    return {
        "namespaces": len(namespaces),
        "requests": len(served),
        "cross_tenant_hits": cross,
        "hits_within_tenant": hits,
        "foreign_feedback_tried": tried,
        "foreign_feedback_rejected": rejected,
        "state_unchanged_by_foreign_feedback": unchanged,
    }


# -- memory -----------------------------------------------------------------------------
def rss_scenario(
    requests: int = 20_000, capacity: int = 5000, max_pending: int | None = None, seed: int = 0
) -> dict:
    """Cheap requests with distinct texts through a router whose cache holds `capacity`
    entries: once the cache is full, memory should stop growing. Besides the cache, the
    router keeps one small record per request awaiting feedback, up to `max_pending`
    (here = capacity; the default of 100,000 records costs ~3.5 KB each)."""
    max_pending = capacity if max_pending is None else max_pending
    counter = itertools.count()
    pool = [
        (
            ModelSpec(f"model-{k}", k + 1.0, k + 1.0),
            CallableBackend(lambda r: f"answer {next(counter)}"),
        )
        for k in range(3)
    ]
    cache = SemanticCache("hashing", capacity=capacity, refit_every=25)
    router = SmartRouter(
        pool, embedder=cache.embedder, cache=cache, random_state=seed, max_pending=max_pending
    )
    rng = np.random.default_rng(seed)
    router.complete(_text(rng, "warm-up"))
    latencies = np.zeros(requests)  # allocated before the first reading: not a growth
    gc.collect()
    start = rss_mb()
    warm_at = min(requests, 2 * max(capacity, max_pending))
    warm = math.nan
    started = time.perf_counter()
    for i in range(requests):
        t0 = time.perf_counter()
        router.complete(f"{i:x} {_text(rng, 'memory')}")
        latencies[i] = time.perf_counter() - t0
        if i + 1 == warm_at:
            gc.collect()
            warm = rss_mb()
    wall = time.perf_counter() - started
    gc.collect()
    end = rss_mb()
    entries = _entries(router)
    router.close()
    return {
        "rss_requests": requests,
        "rss_cache_capacity": capacity,
        "rss_max_pending": max_pending,
        "rss_cache_entries": entries,
        "rss_mb_start": round(start, 1),
        "rss_mb_after_fill": round(warm, 1),
        "rss_mb_end": round(end, 1),
        "rss_growth_after_fill_mb": round(end - warm, 1),
        "request_p50_ms": _ms(latencies, 50),
        "request_p99_ms": _ms(latencies, 99),
        "wall_s": round(wall, 2),
    }


# -- all of it --------------------------------------------------------------------------
def run_stress(
    size: str = "default", seed: int = 0, progress: Callable[[str], Any] | None = None
) -> dict:
    """Every scenario at one size; returns the JSON of `sls-router stress`."""
    from .stress_inputs import bad_input_scenario
    from .stress_kill9 import kill9_scenario

    if size not in SIZES:
        raise SLSRouterError(f"size {size!r}: use one of {sorted(SIZES)}.")
    n = SIZES[size]
    say = progress or (lambda message: None)
    out: dict[str, Any] = {"size": size, "seed": seed}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    steps: list[tuple[str, Callable[[], dict]]] = [
        ("memory", lambda: rss_scenario(n["rss_requests"], n["rss_capacity"], seed=seed)),
        ("faults", lambda: fault_scenario(n["fault_requests"], 0.3, seed)),
        (
            "load",
            lambda: load_scenario(n["threads"], n["per_thread"], n["tasks"], n["per_task"], seed),
        ),
        ("tenants", lambda: tenant_scenario(n["tenants"], n["tenant_texts"], seed=seed)),
        ("bad_inputs", lambda: bad_input_scenario(seed=seed)),
        ("kill9", lambda: kill9_scenario(n["kill9_trials"], seed=seed)),
    ]
    for name, run in steps:
        say(f"stress: {name} ...")
        t0 = time.perf_counter()
        out[name] = run()
        timings[name] = round(time.perf_counter() - t0, 1)
    out.update(
        {
            "answered_fraction": out["faults"]["answered_fraction"],
            "mischarged_requests": out["faults"]["mischarged_requests"],
            "feedback_lost": out["load"]["feedback_lost"] + out["load"]["feedback_double_counted"],
            "load_consistent": out["load"]["consistent"],
            "cross_tenant_hits": out["tenants"]["cross_tenant_hits"],
            "kill9_trials": out["kill9"]["trials"],
            "kill9_loaded": out["kill9"]["loaded"],
            "bad_inputs_tried": out["bad_inputs"]["tried"],
            "bad_inputs_clear_errors": out["bad_inputs"]["clear"],
            "rss_mb_start": out["memory"]["rss_mb_start"],
            "rss_mb_end": out["memory"]["rss_mb_end"],
            "rss_mb_after_fill": out["memory"]["rss_mb_after_fill"],
            "rss_requests": out["memory"]["rss_requests"],
            "durations_s": timings,
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    return out


def stress_goals(result: dict) -> dict[str, tuple[Any, str, bool]]:
    """Each headline figure with its goal: (value, goal, met)."""
    quick = result["size"] == "quick"
    trials, loaded = result["kill9_trials"], result["kill9_loaded"]
    tried, clear = result["bad_inputs_tried"], result["bad_inputs_clear_errors"]
    return {
        "answered_fraction": (
            result["answered_fraction"],
            "1.0 under 30% faults",
            result["answered_fraction"] == 1.0,
        ),
        "mischarged_requests": (
            result["mischarged_requests"],
            "0",
            result["mischarged_requests"] == 0,
        ),
        "feedback_lost": (
            result["feedback_lost"],
            "0, counts exact",
            result["feedback_lost"] == 0 and result["load_consistent"],
        ),
        "cross_tenant_hits": (result["cross_tenant_hits"], "0", result["cross_tenant_hits"] == 0),
        "kill9_loaded / trials": (
            f"{loaded} / {trials}",
            "equal, >= 20 trials",
            loaded == trials and (quick or trials >= 20),
        ),
        "bad_inputs clear / tried": (
            f"{clear} / {tried}",
            "equal, >= 50 inputs",
            clear == tried >= 50,
        ),
    }
