"""sls-router in LlamaIndex's instrumentation: custom events, and a feedback handler.

Every answer `SmartRouterLLM` serves emits one `SLSRouteEvent` (an `SLSCacheHitEvent`
when it came from the cache), and every feedback an `SLSFeedbackEvent`, on the
dispatcher of this module; handlers on the root dispatcher see them with the rest of
a trace. `SLSFeedbackEventHandler` closes the loop the other way: it judges the
answers of LLM end events with a verifier and sends the scores to the router.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, ToolCallBlock
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent

from sls_router import BoundedVerifier, Verifier
from sls_router.errors import ConfigurationError, UnknownEntryError
from sls_router.metadata import request_id_of
from sls_router.types import Request, Response

from .messages import marked_query, to_engine_messages

logger = logging.getLogger(__name__)


class SLSRouteEvent(BaseEvent):
    """One answer served by the router: who answered, at what cost, how sure it was."""

    request_id: str
    model: str
    cache_hit: bool
    cost_usd: float
    latency_s: float
    predicted_quality: float
    input_tokens: int
    output_tokens: int
    tried: list[str]

    @classmethod
    def class_name(cls) -> str:
        return "SLSRouteEvent"

    @classmethod
    def from_response(cls, response: Response) -> SLSRouteEvent:
        event_cls = SLSCacheHitEvent if response.cache_hit else SLSRouteEvent
        return event_cls(
            request_id=response.request_id,
            model=response.model,
            cache_hit=response.cache_hit,
            cost_usd=response.cost_usd,
            latency_s=response.latency_s,
            predicted_quality=response.predicted_quality,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            tried=list(response.tried),
        )


class SLSCacheHitEvent(SLSRouteEvent):
    """An answer served from the semantic cache (no model was called)."""

    @classmethod
    def class_name(cls) -> str:
        return "SLSCacheHitEvent"


class SLSFeedbackEvent(BaseEvent):
    """A score sent to the router for a served answer."""

    request_id: str
    score: float
    source: str

    @classmethod
    def class_name(cls) -> str:
        return "SLSFeedbackEvent"


def dispatcher() -> Any:
    """This package's dispatcher (looked up when used: nothing happens at import)."""
    return get_dispatcher(__name__)


def emit_route(response: Response) -> None:
    dispatcher().event(SLSRouteEvent.from_response(response))


def emit_feedback(request_id: str, score: float, source: str) -> None:
    dispatcher().event(SLSFeedbackEvent(request_id=request_id, score=float(score), source=source))


class SLSFeedbackEventHandler(BaseEventHandler):
    """Applies a verifier to every answer the router served, once per request.

    Attach it with ``get_dispatcher().add_event_handler(handler)``. On each
    `LLMChatEndEvent` / `LLMCompletionEndEvent` whose response carries
    ``sls_request_id``, it scores (the request as the engine saw it, answer text) with
    the verifier and calls ``target.feedback(request_id, score, source="verifier")``.
    Tool-call turns and abstentions (None) are skipped. The dispatcher swallows
    handler errors, so failures are logged and counted in `errors` instead.

    Parameters
    ----------
    target : a `SmartRouter` or `SmartRouterLLM` (anything with ``feedback``).
    verifier : the engine's protocol, ``fn(request, answer_text) -> float in [0, 1] |
        None``: `sls_router.LogTemplateVerifier()`, `DoctestVerifier()` or your own.
    source : feedback source label; "verifier" weighs it as weak evidence.
    verifier_timeout_s : each check's time budget; past it, or if the verifier raises,
        no score is sent (see `sls_router.BoundedVerifier`; counters in
        ``handler.verifier.stats()``).
    max_seen : how many request ids are remembered to avoid judging twice.
    """

    target: Any
    verifier: Any
    source: str = "verifier"
    max_seen: int = 100_000
    applied: int = 0
    errors: int = 0
    _seen: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self, target: Any, verifier: Verifier, *, verifier_timeout_s: float = 10.0, **kwargs: Any
    ) -> None:
        if not callable(getattr(target, "feedback", None)):
            raise ConfigurationError(
                f"SLSFeedbackEventHandler needs a SmartRouter or "
                f"SmartRouterLLM, got {type(target).__name__}."
            )
        super().__init__(
            target=target,
            verifier=BoundedVerifier(verifier, timeout_s=verifier_timeout_s),
            **kwargs,
        )

    @classmethod
    def class_name(cls) -> str:
        return "SLSFeedbackEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        judged = _judgeable(event)
        if judged is None:
            return
        request_id, request, answer = judged
        with self._lock:
            if request_id in self._seen:
                return
            self._seen[request_id] = True
            while len(self._seen) > self.max_seen:
                self._seen.popitem(last=False)
        try:
            score = self.verifier(request, answer)
            if score is None:
                return
            self.target.feedback(request_id, score, source=self.source)
            self.applied += 1
        except UnknownEntryError:
            logger.debug("request %s was served by another router; skipped", request_id)
        except Exception:  # the dispatcher would hide it: say it out loud
            self.errors += 1
            logger.warning("verifier feedback for request %s failed", request_id, exc_info=True)


def _judgeable(event: BaseEvent) -> tuple[str, Request, str] | None:
    """(request_id, request, answer) of an LLM end event served by sls-router, else None."""
    if isinstance(event, LLMChatEndEvent):
        response = event.response
        if response is None or not isinstance(response, ChatResponse):
            return None
        if any(isinstance(b, ToolCallBlock) for b in response.message.blocks):
            return None
        request = Request(
            messages=to_engine_messages(event.messages), query=marked_query(event.messages)
        )
        answer = response.message.content or ""
    elif isinstance(event, LLMCompletionEndEvent):
        response = event.response
        request = Request(prompt=event.prompt, query=getattr(event.prompt, "sls_query", None))
        answer = response.text or ""
    else:
        return None
    request_id = request_id_of(response.additional_kwargs)
    if request_id is None:
        return None
    return request_id, request, answer
