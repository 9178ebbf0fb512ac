"""The routing metadata of an answer: one set of keys, defined here for every front end.

LangChain's adapter puts it in `AIMessage.response_metadata`, LlamaIndex's in the
response's `additional_kwargs`; the handlers that read an answer back (feedback by run,
verifiers on end events) look the request id up here too. Keeping the keys in one
place means a front end cannot drift from the others, and users learn them once.

=========================  =========  =================================================
key                        type       meaning
=========================  =========  =================================================
``sls_model``              str        the model that answered (for a cache hit: the one
                                      that wrote the cached answer)
``sls_cache_hit``          bool       served from the semantic cache: no model called
``sls_cost_usd``           float      USD this request cost, every call made for it
                                      (failed-over and re-routed ones) included
``sls_latency_s``          float      seconds spent: the model calls' latencies summed
                                      (for a hit: the cache lookup's time)
``sls_latency_modelled``   bool       part of that latency was modelled from tokens and
                                      throughput (replays), not observed
``sls_predicted_quality``  float      the router's P(right) for the answer, in [0, 1]
``sls_request_id``         str        the id to send feedback on
``sls_tried``              list[str]  the models called, in order, failed ones included
                                      (empty for a hit)
=========================  =========  =================================================

Tokens are not here: each framework has its own usage field, which its token counters
read (`usage_metadata`, `raw["usage"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .types import Response

REQUEST_ID_KEY = "sls_request_id"

KEYS = (
    "sls_model",
    "sls_cache_hit",
    "sls_cost_usd",
    "sls_latency_s",
    "sls_latency_modelled",
    "sls_predicted_quality",
    REQUEST_ID_KEY,
    "sls_tried",
)
"""Every key `routing_metadata` writes, in its order."""


def routing_metadata(response: Response) -> dict[str, Any]:
    """What the router decided and paid for `response`, under the keys above (JSON-safe)."""
    return {
        "sls_model": response.model,
        "sls_cache_hit": response.cache_hit,
        "sls_cost_usd": response.cost_usd,
        "sls_latency_s": response.latency_s,
        "sls_latency_modelled": response.latency_modelled,
        "sls_predicted_quality": response.predicted_quality,
        REQUEST_ID_KEY: response.request_id,
        "sls_tried": list(response.tried),
    }


def request_id_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The request id in an answer's metadata; None when sls-router did not serve it."""
    request_id = metadata.get(REQUEST_ID_KEY) if isinstance(metadata, Mapping) else None
    return request_id if isinstance(request_id, str) else None


THREAD_KEYS = ("thread_id", "session_id", "conversation_id")
"""Run metadata that names a conversation (LangGraph's ``thread_id`` first), in the order
`thread_of` reads them."""


def thread_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The conversation a call belongs to, from a run's metadata (`Request.thread`), or
    None when no key names one."""
    for key in THREAD_KEYS:
        value = (metadata or {}).get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None
