"""Feedback through LangChain callbacks: user ratings by run id, verifier checks on end,
and answers the chain's output parser refused."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from pydantic import ValidationError

from sls_router import BoundedVerifier, Request, SmartRouter, UnknownEntryError, Verifier
from sls_router.metadata import KEYS, REQUEST_ID_KEY, request_id_of

from .chat_models import SmartRouterLLM
from .messages import to_engine_messages


class SLSFeedbackHandler(BaseCallbackHandler):
    """Remembers each `SmartRouterLLM` run's routing decision by `run_id` (the answer's
    `sls_router.metadata` keys, read when the run ends, so streamed runs count too).

    `handler.feedback(run_id, score)` rates a run's answer (e.g. a user's thumbs up);
    with a `verifier` (the engine's protocol: `verifier(request, text) -> score | None`)
    every answer is checked when its run ends and the score is sent as feedback; a check
    gets `verifier_timeout_s` (past it, or if the verifier raises, no score is sent: see
    `sls_router.BoundedVerifier`, whose counters are `handler.verifier.stats()`).
    An answer that the output parser after it in a chain refuses (`OutputParserException`,
    or a structured-output schema's `ValidationError`) is feedback of source
    "output_parser" against it: the answer was not usable as asked.
    Pass the handler in `callbacks=[handler]` of `invoke`, a chain's config, or the model.
    """

    def __init__(
        self,
        llm: SmartRouterLLM | SmartRouter,
        verifier: Verifier | None = None,
        *,
        verifier_timeout_s: float = 10.0,
        max_runs: int = 100_000,
    ) -> None:
        self.router = llm.router if isinstance(llm, SmartRouterLLM) else llm
        self.verifier = (
            None if verifier is None else BoundedVerifier(verifier, timeout_s=verifier_timeout_s)
        )
        self.max_runs = max_runs
        self.decisions: OrderedDict[UUID, dict[str, Any]] = OrderedDict()
        self._prompts: dict[UUID, list[BaseMessage]] = {}
        # per parent run (a chain), the request id of the answer its parser will read
        self._last_answer: OrderedDict[UUID, str] = OrderedDict()
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        if self.verifier is not None and messages:
            with self._lock:
                self._prompts[run_id] = messages[0]

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        generation = response.generations[0][0] if response.generations else None
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None)
        request_id = request_id_of(metadata)
        with self._lock:
            messages = self._prompts.pop(run_id, None)
            if request_id is None:
                return  # not a SmartRouterLLM run
            self.decisions[run_id] = {k: metadata[k] for k in KEYS if k in metadata}
            while len(self.decisions) > self.max_runs:
                self.decisions.popitem(last=False)
            if parent_run_id is not None:
                self._last_answer[parent_run_id] = request_id
                self._last_answer.move_to_end(parent_run_id)
                while len(self._last_answer) > self.max_runs:
                    self._last_answer.popitem(last=False)
        if self.verifier is None or messages is None or message.tool_calls:
            return  # nothing to check with, or a tool call (checked by running the tool)
        score = self.verifier(Request(messages=to_engine_messages(messages)), generation.text)
        if score is not None:
            self.router.feedback(request_id, score, source="verifier")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._prompts.pop(run_id, None)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A parser (a chain step) that fails on the answer its sibling model run gave:
        feedback against that answer, once (the error then rises through the chain)."""
        if parent_run_id is None or not isinstance(error, (OutputParserException, ValidationError)):
            return
        with self._lock:
            request_id = self._last_answer.pop(parent_run_id, None)
        if request_id is not None:
            with contextlib.suppress(UnknownEntryError):  # forgotten by the router meanwhile
                self.router.feedback(request_id, 0.0, source="output_parser")

    def feedback(self, run_id: UUID | str, score: float, source: str = "user") -> None:
        """Rate the answer of run `run_id` (1 right, 0 wrong)."""
        key = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
        with self._lock:
            decision = self.decisions.get(key)
        if decision is None:
            raise UnknownEntryError(
                f"run {run_id} made no SmartRouterLLM call seen by this "
                "handler; pass the run_id of a run it was a callback of."
            )
        self.router.feedback(decision[REQUEST_ID_KEY], score, source=source)
