"""Cache scopes: which requests may share answers at all.

Two requests may share a cached answer only when everything the model saw besides
the embedded text is the same: the tenant (namespace), the generation parameters,
the system prompt and the rest of the conversation, turns after the embedded one
(tool calls and their results) included. `request_scope` is the one rule every front
end uses; `scope_key` is the hash under it, for callers of `SemanticCache` that have
no `Request`. Entries of different scopes never meet, whatever their similarity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidInputError
from ..types import Request


def request_scope(request: Request) -> str:
    """The cache scope of a request: tenant, parameters, system prompt and context.

    The one place a request's scope is derived: the router and every adapter call it,
    so an answer written after a tool result is never stored under the bare question.
    """
    return scope_key(
        request.namespace, params=request.params, system=request.system, history=request.context
    )


def scope_key(
    namespace: str = "default",
    *,
    params: Mapping[str, Any] | None = None,
    system: str | None = None,
    history: Sequence[Any] | None = None,
) -> str:
    """A stable key for (namespace, params, system prompt, context).

    Low level: front ends call `request_scope`, which fills these from a `Request`.
    ``history`` is any JSON-serialisable sequence (e.g. ``[{"role": ..., "content": ...}]``);
    ``params`` are the generation parameters that change answers (model, temperature, ...).
    """
    if not isinstance(namespace, str) or not namespace:
        raise InvalidInputError("namespace must be a non-empty string, e.g. the tenant's id.")
    try:
        body = json.dumps(
            [dict(params or {}), system, list(history or [])],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"scope parts must be JSON-serialisable ({exc}); pass plain dicts, lists and strings."
        ) from exc
    digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{namespace}:{digest}"
