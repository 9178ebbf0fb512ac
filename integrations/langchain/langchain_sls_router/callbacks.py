"""Feedback through LangChain callbacks: user ratings by run id, verifier checks on end."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from sls_router import Request, SmartRouter, UnknownEntryError, Verifier

from .chat_models import ROUTE_EVENT, SmartRouterLLM
from .messages import to_engine_messages


class SLSFeedbackHandler(BaseCallbackHandler):
    """Remembers each `SmartRouterLLM` run's routing decision by `run_id`.

    `handler.feedback(run_id, score)` rates a run's answer (e.g. a user's thumbs up);
    with a `verifier` (the engine's protocol: `verifier(request, text) -> score | None`)
    every answer is checked when its run ends and the score is sent as feedback.
    Pass the handler in `callbacks=[handler]` of `invoke`, a chain's config, or the model.
    """

    def __init__(self, llm: SmartRouterLLM | SmartRouter, verifier: Verifier | None = None, *,
                 max_runs: int = 100_000) -> None:
        self.router = llm.router if isinstance(llm, SmartRouterLLM) else llm
        self.verifier = verifier
        self.max_runs = max_runs
        self.decisions: OrderedDict[UUID, dict[str, Any]] = OrderedDict()
        self._prompts: dict[UUID, list[BaseMessage]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]],
                            *, run_id: UUID, **kwargs: Any) -> None:
        if self.verifier is not None and messages:
            with self._lock:
                self._prompts[run_id] = messages[0]

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name != ROUTE_EVENT:
            return
        with self._lock:
            self.decisions[run_id] = dict(data)
            while len(self.decisions) > self.max_runs:
                self.decisions.popitem(last=False)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            messages = self._prompts.pop(run_id, None)
            decision = self.decisions.get(run_id)
        if self.verifier is None or messages is None or decision is None:
            return  # not a SmartRouterLLM run, or nothing to check with
        generation = response.generations[0][0]
        if getattr(getattr(generation, "message", None), "tool_calls", None):
            return  # a tool call is checked by running the tool, not by a text verifier
        score = self.verifier(Request(messages=to_engine_messages(messages)), generation.text)
        if score is not None:
            self.router.feedback(decision["sls_request_id"], score, source="verifier")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._prompts.pop(run_id, None)

    def feedback(self, run_id: UUID | str, score: float, source: str = "user") -> None:
        """Rate the answer of run `run_id` (1 right, 0 wrong)."""
        key = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
        with self._lock:
            decision = self.decisions.get(key)
        if decision is None:
            raise UnknownEntryError(f"run {run_id} made no SmartRouterLLM call seen by this "
                                    "handler; pass the run_id of a run it was a callback of.")
        self.router.feedback(decision["sls_request_id"], score, source=source)
