"""`SLSSemanticCache`: LangChain's cache interface over sls-router's adaptive semantic cache.

Any LangChain model can use it (`set_llm_cache(SLSSemanticCache())` or `cache=`):
entries are partitioned by `llm_string` (the model and its parameters) and by the
rest of the conversation, tool calls and results after the question included (the
engine's `request_scope`); the last human turn is what is embedded.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads
from langchain_core.messages import BaseMessage

from sls_router import InvalidInputError, Request, SemanticCache, UnknownEntryError
from sls_router.cache import request_scope
from sls_router.embeddings import Embedder

from .messages import to_engine_messages

_MAX_SERVED = 100_000


class SLSSemanticCache(BaseCache):
    """Serves a stored answer when an equivalent prompt was answered by the same model.

    Thresholds start from a conservative prior and adapt from `feedback(prompt,
    llm_string, score)` on served answers. Answers are stored as LangChain's JSON
    serialisation (no pickle).
    """

    def __init__(
        self,
        embedder: str | Embedder | None = "minilm",
        *,
        namespace: str = "default",
        max_wrong_rate: float = 0.02,
        capacity: int = 100_000,
        ttl_s: float | None = None,
        cache: SemanticCache | None = None,
    ) -> None:
        self.cache = cache or SemanticCache(
            embedder, max_wrong_rate=max_wrong_rate, capacity=capacity, ttl_s=ttl_s
        )
        self.namespace = namespace
        self._served: OrderedDict[tuple[str, str], Any] = OrderedDict()  # awaiting feedback
        self._lock = threading.Lock()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        query, scope = self._key(prompt, llm_string)
        found = self.cache.lookup(query, scope)
        if not found.hit:
            return None
        with self._lock:
            self._served[(prompt, llm_string)] = found
            while len(self._served) > _MAX_SERVED:  # hits nobody rates must not pile up
                self._served.popitem(last=False)
        return [loads(g, allowed_objects="core") for g in found.payload["generations"]]

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if not return_val or any(
            getattr(getattr(g, "message", None), "tool_calls", None) for g in return_val
        ):
            return  # tool-call turns are never cached
        query, scope = self._key(prompt, llm_string)
        self.cache.insert(
            query,
            "".join(g.text for g in return_val),
            scope,
            payload={"generations": [dumps(g) for g in return_val]},
        )

    def clear(self, **kwargs: Any) -> None:
        self.cache.clear()
        with self._lock:
            self._served.clear()

    def feedback(self, prompt: str, llm_string: str, score: float) -> None:
        """Judge the answer last served for (prompt, llm_string): 1 right, 0 wrong."""
        with self._lock:
            served = self._served.pop((prompt, llm_string), None)
        if served is None:
            raise UnknownEntryError(
                "no cached answer was served for this prompt and model; "
                "rate only answers that came from this cache."
            )
        with contextlib.suppress(UnknownEntryError):  # the entry was evicted meanwhile
            self.cache.observe(served, float(score) >= 0.5)

    def _key(self, prompt: str, llm_string: str) -> tuple[str, str]:
        """The embedded text and the engine's scope: the router's rule, not a copy of it,
        so an answer written after a tool result is never served to the bare question."""
        request = _as_request(prompt, self.namespace, llm_string)
        return request.embed_text, request_scope(request)


def _as_request(prompt: str, namespace: str, llm_string: str) -> Request:
    """Chat models hand the cache their messages serialised as JSON; LLMs plain text.
    `llm_string` stands for the generation parameters (model and settings)."""
    try:
        messages = loads(prompt, allowed_objects="messages")
    except Exception:  # not serialised messages: a plain text prompt
        messages = None
    params = {"llm_string": llm_string}
    if (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, BaseMessage) for m in messages)
    ):
        return Request(messages=to_engine_messages(messages), namespace=namespace, params=params)
    if not isinstance(prompt, str):
        raise InvalidInputError("the cache needs the prompt as a string.")
    return Request(prompt=prompt, namespace=namespace, params=params)
