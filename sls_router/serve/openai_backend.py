"""An OpenAI-compatible endpoint as a backend, through the official `openai` client
(OpenAI itself, vLLM, Ollama, LiteLLM's proxy, another sls-router server...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..backends import BaseBackend, StreamChunk
from ..errors import DependencyError
from ..types import Completion, Request, Usage, estimate_tokens
from .openai_shapes import openai_messages

_FORWARDED = ("temperature", "max_tokens", "stop", "tool_choice")


class OpenAIBackend(BaseBackend):
    """Calls `model` at `base_url` with `api_key`; text, tool calls and usage come back.

    The clients are made at the first call (none at construction); the provider's
    errors (rate limits with their retry-after included) reach the router as raised.
    """

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._sync: Any = None
        self._async: Any = None

    def _clients(self) -> tuple[Any, Any]:
        if self._sync is None:
            try:
                import openai
            except ImportError as exc:  # pragma: no cover - part of the serve extra
                raise DependencyError(
                    "OpenAI-compatible models need the openai package: "
                    "pip install 'sls-router[serve]'."
                ) from exc
            options: dict[str, Any] = dict(
                base_url=self.base_url,
                api_key=self.api_key or "none",  # local servers often take any key
                timeout=self.timeout_s,
                max_retries=0,  # the router fails over instead
            )
            self._sync = openai.OpenAI(**options)
            self._async = openai.AsyncOpenAI(**options)
        return self._sync, self._async

    def _arguments(self, request: Request) -> dict[str, Any]:
        messages = request.messages or [{"role": "user", "content": request.text}]
        kwargs: dict[str, Any] = {"model": self.model, "messages": openai_messages(messages)}
        for key in _FORWARDED:
            if request.params.get(key) is not None:
                kwargs[key] = request.params[key]
        if request.tools:
            kwargs["tools"] = request.tools
        else:
            kwargs.pop("tool_choice", None)
        return kwargs

    def complete(self, request: Request) -> Completion:
        client, _ = self._clients()
        return _completion(request, client.chat.completions.create(**self._arguments(request)))

    async def acomplete(self, request: Request) -> Completion:
        _, client = self._clients()
        answer = await client.chat.completions.create(**self._arguments(request))
        return _completion(request, answer)

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        client, _ = self._clients()
        merged = _Merged()
        for part in client.chat.completions.create(**self._streaming(request)):
            if text := merged.add(part):
                yield StreamChunk(text)
        yield StreamChunk("", merged.completion(request))

    async def astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        _, client = self._clients()
        merged = _Merged()
        async for part in await client.chat.completions.create(**self._streaming(request)):
            if text := merged.add(part):
                yield StreamChunk(text)
        yield StreamChunk("", merged.completion(request))

    def _streaming(self, request: Request) -> dict[str, Any]:
        return {
            **self._arguments(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }


def _completion(request: Request, answer: Any) -> Completion:
    message = answer.choices[0].message
    calls = [
        {"id": c.id, "name": c.function.name, "args": _args(c.function.arguments)}
        for c in message.tool_calls or []
    ]
    return Completion(
        text=message.content or "",
        usage=_usage(request, answer.usage, message.content or ""),
        tool_calls=calls or None,
        raw={"id": answer.id, "model": answer.model},
    )


def _usage(request: Request, usage: Any, text: str) -> Usage:
    if usage is None:  # a server that reports none: estimated from characters
        return Usage(estimate_tokens(request.text), estimate_tokens(text))
    return Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


def _args(arguments: str | None) -> dict[str, Any]:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return args if isinstance(args, dict) else {"_value": args}


class _Merged:
    """A streamed answer put together: text, tool-call deltas by index, usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.id = self.model = None

    def add(self, part: Any) -> str:
        self.id, self.model = part.id, part.model
        if part.usage is not None:
            self.usage = part.usage
        if not part.choices:
            return ""
        delta = part.choices[0].delta
        for call in delta.tool_calls or []:
            slot = self.calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = call.id or slot["id"]
            if call.function is not None:
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
        text = delta.content or ""
        self.text.append(text)
        return text

    def completion(self, request: Request) -> Completion:
        text = "".join(self.text)
        calls = [
            {"id": c["id"], "name": c["name"], "args": _args(c["arguments"])}
            for _, c in sorted(self.calls.items())
        ]
        return Completion(
            text=text,
            usage=_usage(request, self.usage, text),
            tool_calls=calls or None,
            raw={"id": self.id, "model": self.model},
        )
