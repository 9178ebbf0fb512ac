"""Plain data the engine passes around: no framework types, no behaviour beyond checks."""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError, InvalidInputError

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ModelSpec:
    """A model of the pool: its prices (USD per million tokens) and what it can do.

    `tier` is a coarse size or capability rank (e.g. parameters in billions) used as a
    model feature; the router learns quality per model regardless.
    """

    name: str
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    tier: float = 1.0
    context_window: int = 8192
    supports_tools: bool = False
    timeout_s: float = 60.0
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError("ModelSpec.name must be a non-empty string.")
        for attr in ("input_per_mtok", "output_per_mtok", "tier", "timeout_s"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(
                    f"ModelSpec {self.name!r}: {attr}={value!r}; pass a "
                    "finite number >= 0 (prices are USD per million tokens)."
                )
        if self.timeout_s <= 0 or self.context_window < 1 or self.max_concurrency < 1:
            raise ConfigurationError(
                f"ModelSpec {self.name!r}: timeout_s, context_window and "
                "max_concurrency must be positive."
            )

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6

    def charge(self, completion: Completion) -> float:
        """What one call cost: the provider's own figure when known, else tokens x prices."""
        if completion.cost_usd is not None:
            return float(completion.cost_usd)
        return self.cost(completion.usage.input_tokens, completion.usage.output_tokens)


@dataclass
class Request:
    """One LLM call. Give `messages` (role/content dicts) or a plain `prompt`.

    A message is ``{"role": "system"|"user"|"assistant"|"tool", "content": str}``; an
    assistant turn may add ``"tool_calls": [{"id", "name", "args"}]`` and a tool turn
    needs the ``"tool_call_id"`` it answers. `tools` are OpenAI-style function specs
    (``{"type": "function", "function": {"name", "description", "parameters"}}``);
    a request with tools is routed only among tool-capable models and never cached.

    `query` is the text to cache and route on; by default the last user turn (the
    part of a prompt that varies), never the shared system prompt or history.
    `params` are generation parameters (temperature, max_tokens, stop, ...).
    `model` pins the request to that model of the pool: no routing and no cache
    lookup, but the call, its cost and its feedback are learned from like any other.
    `thread` names the conversation it belongs to (the adapters take it from the run's
    ``thread_id`` / ``session_id`` / ``conversation_id`` metadata): a user asking the
    same question again in a thread soon after is evidence against the answer (reask.py).
    """

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    query: str | None = None
    task: str | None = None
    namespace: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    cache_sampled: bool = False
    model: str | None = None
    thread: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.messages is None and self.prompt is None:
            raise InvalidInputError(
                "a Request needs messages or a prompt; pass "
                "Request(prompt='...') or Request(messages=[...])."
            )
        if self.messages is not None:
            self.messages = _check_messages(self.messages)
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise InvalidInputError(f"prompt must be a str, got {type(self.prompt).__name__}.")
        if self.query is not None and not isinstance(self.query, str):
            raise InvalidInputError(f"query must be a str, got {type(self.query).__name__}.")
        _check_unicode(self.prompt, "prompt")
        _check_unicode(self.query, "query")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise InvalidInputError("model must be the name of a pool model, or None to route.")
        if self.thread is not None and (not isinstance(self.thread, str) or not self.thread):
            raise InvalidInputError("thread must be a non-empty string (a conversation's id).")
        if not isinstance(self.namespace, str) or not self.namespace:
            raise InvalidInputError("namespace must be a non-empty string (the tenant's id).")
        if not isinstance(self.params, Mapping):
            raise InvalidInputError("params must be a dict of generation parameters.")
        self.params = dict(self.params)
        _check_temperature(self.params.get("temperature"))
        # judged on the contents: `text` prefixes each turn with its role, so turns that
        # are all empty would otherwise pass as "user: " and share one cache entry
        if self.prompt is not None:
            empty = not self.prompt.strip()
        else:
            assert self.messages is not None  # checked above: messages or a prompt
            empty = not any(m["content"].strip() or m.get("tool_calls") for m in self.messages)
        if empty:
            raise InvalidInputError("the request is empty: give a non-empty prompt or user turn.")

    @property
    def text(self) -> str:
        """The whole text sent to the model (prompt, or messages joined)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages or [])

    @property
    def embed_text(self) -> str:
        """What is embedded for the cache and the router: the part that varies."""
        if self.query is not None and self.query.strip():
            return self.query
        if self.messages:
            for message in reversed(self.messages):
                if message["role"] == "user" and message["content"].strip():
                    return message["content"]
        return self.text

    @property
    def system(self) -> str | None:
        return "\n".join(m["content"] for m in self.messages or [] if m["role"] == "system") or None

    @property
    def history(self) -> list[dict[str, Any]]:
        """Non-system turns before the last user turn. Not the cache scope, which also
        covers the turns after it (tool results): scope with `request_scope`."""
        turns = [m for m in self.messages or [] if m["role"] != "system"]
        return turns[: _last_user(turns)]

    @property
    def context(self) -> list[Any]:
        """Everything the model sees besides the embedded text and the system prompt:
        the turns before *and after* the last user turn (tool calls and results), and
        the rest of the prompt when `query` names only a part of it. Two requests may
        share a cached answer only when their contexts are equal."""
        turns = [m for m in self.messages or [] if m["role"] != "system"]
        i = _last_user(turns)
        context: list[Any] = turns[:i] + ["<embedded turn>"] + turns[i + 1 :]
        if self.query is not None and self.query.strip():
            text = (
                self.prompt
                if self.prompt is not None
                else (turns[i]["content"] if i < len(turns) else "")
            )
            context.append(text.replace(self.query, "<query>", 1))
        return context

    @property
    def temperature(self) -> float:
        value = self.params.get("temperature", 0.0)
        return float(value) if value is not None else 0.0


CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str | int) -> int:
    """Tokens of a text (or a character count) estimated as characters / 4, rounded up:
    before a call (routing) and for models that report no usage."""
    chars = text if isinstance(text, int) else len(text)
    return math.ceil(chars / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        for attr in ("input_tokens", "output_tokens"):
            value = getattr(self, attr)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise InvalidInputError(f"Usage.{attr}={value!r}: pass a token count (int >= 0).")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one call.

    `cost_usd`/`latency_s` are set when the backend knows them (recorded data, a
    provider's bill); otherwise the router computes cost from the ModelSpec prices and
    measures latency. `latency_modelled` marks latency computed from a model (e.g. from
    tokens and throughput) rather than observed.
    """

    text: str
    usage: Usage = Usage()
    cost_usd: float | None = None
    latency_s: float | None = None
    latency_modelled: bool = False
    tool_calls: list[dict[str, Any]] | None = None
    raw: Any = None

    @property
    def answered(self) -> bool:
        """Text or tool calls: anything else is an empty answer (a failure of the model)."""
        return bool(self.tool_calls) or bool(self.text.strip())

    def __post_init__(self) -> None:
        # checked where a backend builds it, so a garbled answer counts as that model's
        # failure (the router fails over) instead of breaking the bookkeeping after the call
        if not isinstance(self.text, str):
            raise InvalidInputError(
                f"Completion.text is a {type(self.text).__name__}; a backend "
                "must return the answer as a str ('' for none)."
            )
        if not isinstance(self.usage, Usage):
            raise InvalidInputError(
                "Completion.usage must be a Usage(input_tokens, output_tokens)."
            )
        for attr in ("cost_usd", "latency_s"):
            value = getattr(self, attr)
            if value is not None and (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInputError(
                    f"Completion.{attr}={value!r}: pass a finite number >= 0, or None when unknown."
                )


@dataclass(frozen=True)
class Response:
    """What the router returns: the answer and everything it cost and assumed."""

    text: str
    model: str
    cache_hit: bool
    usage: Usage
    cost_usd: float
    latency_s: float
    predicted_quality: float
    request_id: str
    tried: tuple[str, ...] = ()
    latency_modelled: bool = False
    tool_calls: list[dict[str, Any]] | None = None
    raw: Any = None


@dataclass(frozen=True)
class Feedback:
    """A score in [0, 1] for the answer served to `request_id`, and who gave it."""

    request_id: str
    score: float
    source: str = "user"

    def __post_init__(self) -> None:
        score = self.score
        if isinstance(score, bool):
            score = float(score)
        if not isinstance(score, (int, float)) or not math.isfinite(score) or not 0 <= score <= 1:
            raise InvalidInputError(
                f"feedback score {self.score!r} for request {self.request_id!r}"
                ": pass a number in [0, 1] (1 = right, 0 = wrong)."
            )
        object.__setattr__(self, "score", float(score))
        if not isinstance(self.source, str) or not self.source:  # it is saved as JSON
            raise InvalidInputError(
                f"feedback source {self.source!r}: pass a non-empty string "
                "such as 'user', 'label' or 'verifier'."
            )


@dataclass(frozen=True)
class Outcome:
    """One judged answer of a model on a request: a training row of the predictors, and
    what a shared store passes between replicas. `weight` says how much the source is
    trusted (a label 1, a verifier's verdict less)."""

    vector: Any  # np.ndarray (dim,), the embedded request
    features: Any  # np.ndarray, query_features of the request
    model: str
    score: float
    weight: float
    source: str


def _last_user(turns: list[dict[str, Any]]) -> int:
    """Index of the last user turn (len(turns) when there is none)."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i]["role"] == "user":
            return i
    return len(turns)


def _check_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise InvalidInputError("messages must be a non-empty list of {'role', 'content'} dicts.")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidInputError(
                f"message {i} is a {type(message).__name__}; pass "
                "{'role': 'user', 'content': '...'} dicts."
            )
        role, content = message.get("role"), message.get("content", "")
        if role not in ROLES:
            raise InvalidInputError(f"message {i} has role {role!r}; use one of {ROLES}.")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise InvalidInputError(
                f"message {i} content is a {type(content).__name__}; only "
                "text content is supported: pass a string."
            )
        _check_unicode(content, f"message {i} content")
        checked = {**message, "role": role, "content": content}
        if message.get("tool_calls"):
            if role != "assistant":
                raise InvalidInputError(f"message {i}: only assistant turns carry tool_calls.")
            checked["tool_calls"] = check_tool_calls(message["tool_calls"])
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise InvalidInputError(
                f"message {i} is a tool result without a tool_call_id; pass "
                "the id of the assistant's tool call it answers."
            )
        out.append(checked)
    return out


def _check_unicode(text: str | None, what: str) -> None:
    """Refuse lone surrogates (e.g. "\\ud800", left by decoding bytes wrongly): no provider
    and no tokenizer accepts them, and they would fail deep inside an embedder."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid unicode (a lone surrogate "
            f"{text[exc.start]!r} at position {exc.start}); decode the "
            "source bytes with errors='replace' first."
        ) from None


def _check_temperature(value: Any) -> None:
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise InvalidInputError(
            f"params['temperature']={value!r}: pass a finite number >= 0 (or leave it out)."
        )


def check_tool_calls(tool_calls: Any) -> list[dict[str, Any]]:
    """Tool calls as the engine passes them: ``[{"id": str, "name": str, "args": dict}]``."""
    if not isinstance(tool_calls, Sequence) or isinstance(tool_calls, (str, bytes)):
        raise InvalidInputError("tool_calls must be a list of {'id', 'name', 'args'} dicts.")
    out = []
    for call in tool_calls:
        if (
            not isinstance(call, Mapping)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("args", {}), Mapping)
        ):
            raise InvalidInputError(
                f"tool call {call!r}: pass {{'id': str, 'name': str, 'args': dict}}."
            )
        out.append({"id": call.get("id"), "name": call["name"], "args": dict(call.get("args", {}))})
    return out
