"""What the server counts: Prometheus metrics (`/metrics`) and the dashboard's series.

One `Metrics` per app, on its own registry (no global state). It only reads what the
router returned (Response, BackendError) and its counters (`stats()`, the breakers):
it decides nothing. Savings are estimated: the reference model's prices applied to
the tokens of each answer (for a cache hit, the tokens of the answer it replays).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..errors import BackendError
from ..router import SmartRouter
from ..types import ModelSpec, Response

FEEDBACK_SOURCES = ("user", "label", "verifier", "agreement", "judge", "implicit")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """Counters of one server; `bucket_s` is the width of the dashboard's time buckets."""

    def __init__(
        self,
        router: SmartRouter,
        reference: ModelSpec | None = None,
        *,
        bucket_s: float = 10.0,
        buckets: int = 360,
        recent: int = 50,
        overheads: int = 100_000,
    ) -> None:
        self.router = router
        self.reference = reference
        self.bucket_s = bucket_s
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sls_requests", "Chat completions answered, by how", ["route", "cache"], registry=r
        )
        self.refused = Counter(
            "sls_refused_requests", "Requests refused, by HTTP status", ["status"], registry=r
        )
        self.feedback = Counter(
            "sls_feedback", "Feedback accepted, by source", ["source"], registry=r
        )
        self.spend = Counter("sls_spend_usd", "USD paid to the models", registry=r)
        self.reference_spend = Counter(
            "sls_reference_spend_usd",
            "USD the reference model would have cost for the same answers (estimated)",
            registry=r,
        )
        self.model_calls = Counter(
            "sls_model_calls", "Model calls, by model", ["model"], registry=r
        )
        self.model_failures = Counter(
            "sls_model_failures",
            "Model calls that failed or were passed over, by model",
            ["model"],
            registry=r,
        )
        self.overhead = Histogram(
            "sls_router_overhead_seconds",
            "Server time of a request minus its model time",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_time = Histogram(
            "sls_model_seconds", "Model time of a fresh answer", buckets=_MODEL_BUCKETS, registry=r
        )
        r.register(_RouterCollector(router))
        self._lock = threading.Lock()
        self._series: deque[dict[str, Any]] = deque(maxlen=buckets)
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self._overheads: deque[float] = deque(maxlen=overheads)  # for exact percentiles
        self._judged = (0, 0)  # the cache's hits judged wrong, right (see sample_cache)

    # -- recording ------------------------------------------------------------------------
    def answered(self, response: Response, *, pinned: bool, wall_s: float) -> None:
        model_s = 0.0 if response.cache_hit else response.latency_s
        overhead = max(0.0, wall_s - model_s)
        self.requests.labels(
            "pinned" if pinned else "routed", str(response.cache_hit).lower()
        ).inc()
        self.spend.inc(response.cost_usd)
        reference = self._reference_cost(response)
        self.reference_spend.inc(reference)
        for model in response.tried:
            self.model_calls.labels(model).inc()
        for model in response.tried[:-1]:  # every call before the served one failed or lost
            self.model_failures.labels(model).inc()
        self.overhead.observe(overhead)
        if not response.cache_hit:
            self.model_time.observe(model_s)
        now = time.time()
        with self._lock:
            bucket = self._bucket(now)
            self._overheads.append(overhead)
            bucket["requests"] += 1
            bucket["cache_hits"] += int(response.cache_hit)
            bucket["spend_usd"] += response.cost_usd
            bucket["reference_usd"] += reference
            bucket["models"][response.model] = bucket["models"].get(response.model, 0) + 1
            self._recent.appendleft(
                {
                    "time": now,
                    "request_id": response.request_id,
                    "model": response.model,
                    "cache_hit": response.cache_hit,
                    "pinned": pinned,
                    "tried": list(response.tried),
                    "cost_usd": response.cost_usd,
                    "predicted_quality": response.predicted_quality,
                    "latency_s": response.latency_s,
                    "latency_modelled": response.latency_modelled,
                    "overhead_ms": overhead * 1000,
                }
            )

    def failed(self, error: BackendError) -> None:
        for model, _why in error.attempts:
            self.model_calls.labels(model).inc()
            self.model_failures.labels(model).inc()

    def refused_with(self, status: int) -> None:
        self.refused.labels(str(status)).inc()

    def feedback_taken(self, source: str) -> None:
        # clients name the source: a bounded set of labels keeps /metrics bounded
        self.feedback.labels(source if source in FEEDBACK_SOURCES else "other").inc()

    def _reference_cost(self, response: Response) -> float:
        if self.reference is None:
            return response.cost_usd
        usage = response.usage
        tokens = (usage.input_tokens, usage.output_tokens)
        if response.cache_hit and isinstance(response.raw, dict):  # the replayed answer's
            tokens = (
                int(response.raw.get("input_tokens", 0) or 0),
                int(response.raw.get("output_tokens", 0) or 0),
            )
        return self.reference.cost(*tokens)

    def sample_cache(self) -> None:
        """Read the cache's judged hits (wrong, right) for the buckets that start next:
        called every bucket off the event loop, as a shared store's count is a query."""
        cache = self.router.stats().get("cache") or {}
        self._judged = (int(cache.get("wrong_hits", 0)), int(cache.get("right_hits", 0)))

    def _bucket(self, now: float) -> dict[str, Any]:
        start = now - now % self.bucket_s
        if not self._series or self._series[-1]["start"] != start:
            wrong, right = self._judged
            self._series.append(
                {
                    "start": start,
                    "requests": 0,
                    "cache_hits": 0,
                    "spend_usd": 0.0,
                    "reference_usd": 0.0,
                    "models": {},
                    # cumulative, sampled at most a bucket before: the wrong-hit estimate
                    "wrong_hits": wrong,
                    "right_hits": right,
                }
            )
        return self._series[-1]

    # -- reading --------------------------------------------------------------------------
    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def totals(self) -> dict[str, Any]:
        """The headline figures, read from the same counters /metrics exposes."""
        values = {
            (m.name, tuple(sorted(s.labels.items())), s.name): s.value
            for m in self.registry.collect()
            for s in m.samples
        }

        def total(sample: str) -> float:
            return sum(v for (_, _, name), v in values.items() if name == sample)

        def labelled(sample: str, label: str) -> dict[str, float]:
            out: dict[str, float] = {}
            for (_, labels, name), v in values.items():
                if name == sample:
                    key = dict(labels)[label]
                    out[key] = out.get(key, 0.0) + v
            return out

        requests = total("sls_requests_total")
        hits = labelled("sls_requests_total", "cache").get("true", 0.0)
        judged = total("sls_cache_wrong_hits") + total("sls_cache_right_hits")
        spend = total("sls_spend_usd_total")
        reference = total("sls_reference_spend_usd_total")
        return {
            "requests": int(requests),
            "cache_hits": int(hits),
            "cache_hit_rate": hits / requests if requests else 0.0,
            "wrong_hit_rate": total("sls_cache_wrong_hits") / judged if judged else 0.0,
            "judged_hits": int(judged),
            "refused": int(total("sls_refused_requests_total")),
            "feedback": int(total("sls_feedback_total")),
            "spend_usd": spend,
            "reference_usd": reference,
            "savings_usd": reference - spend,
            "reference_model": None if self.reference is None else self.reference.name,
            "model_calls": {
                k: int(v) for k, v in labelled("sls_model_calls_total", "model").items()
            },
            "breakers_open": [
                m for m, s in self.router.health.status().items() if s["retry_in_s"] > 0
            ],
        }

    def overhead_ms(self) -> dict[str, float | int]:
        """Percentiles of the server's own time per request (the last `overheads`)."""
        with self._lock:
            values = sorted(self._overheads)
        if not values:
            return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}

        def at(q: float) -> float:
            return 1000 * values[min(len(values) - 1, int(q * len(values)))]

        return {"n": len(values), "p50": at(0.5), "p99": at(0.99), "max": 1000 * values[-1]}

    def series(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(b, models=dict(b["models"])) for b in self._series]

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)


class _RouterCollector(Collector):
    """The router's own counters, read at scrape time: the cache and the breakers."""

    def __init__(self, router: SmartRouter) -> None:
        self.router = router

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cache = self.router.stats().get("cache") or {}
        for key, doc in (
            ("lookups", "Cache lookups"),
            ("hits", "Cache hits served"),
            ("wrong_hits", "Cache hits judged wrong by feedback"),
            ("right_hits", "Cache hits judged right by feedback"),
            ("entries", "Entries in the cache"),
        ):
            yield GaugeMetricFamily(f"sls_cache_{key}", doc, value=float(cache.get(key, 0)))
        breaker = GaugeMetricFamily(
            "sls_model_breaker_open",
            "1 while a model is out of rotation (failing or rate-limited)",
            labels=["model"],
        )
        status = self.router.health.status()
        for model in self.router.specs:
            retry = status.get(model, {}).get("retry_in_s", 0.0)
            breaker.add_metric([model], 1.0 if retry > 0 else 0.0)
        yield breaker
