"""The HTTP app: routes, tenants, errors and the lifecycle; no routing logic.

Every answer comes from the router (`acomplete` / `astream`), every score goes through
its one feedback door (`SmartRouter.feedback`). This module only translates (via
openai_shapes), authenticates, counts (via metrics) and maps errors to OpenAI's
error shape and status codes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from ..errors import BackendError, InvalidInputError, SLSRouterError, UnknownEntryError
from ..router import SmartRouter
from ..types import Response as RouterResponse
from ..types import estimate_tokens
from .config import ROUTE_MODEL, ServeConfig, key_digest
from .metrics import CONTENT_TYPE, Metrics
from .openai_shapes import (
    ChatCall,
    chat_completion,
    chunk,
    error_body,
    final_chunks,
    parse_chat_request,
    routing_headers,
)

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024
_RETRY_AFTER = re.compile(r"retry after ([0-9.]+) s")


class APIError(Exception):
    """An answer in OpenAI's error shape with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}
        self.extra = extra


@dataclass
class Server:
    """What the app serves: the router, the checked config, the counters, and whether
    to save the state on shutdown (a router opened from `--state`)."""

    router: SmartRouter
    config: ServeConfig
    metrics: Metrics
    save_on_exit: bool
    ready: bool = True


def create_app(server: Server) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler = asyncio.create_task(_sample_cache(server))
        yield  # uvicorn lets in-flight requests finish before this point
        server.ready = False
        sampler.cancel()
        await asyncio.to_thread(_shut_down, server)

    app = FastAPI(title="sls-router", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server

    @app.exception_handler(APIError)
    async def api_error(_: HTTPRequest, exc: APIError) -> JSONResponse:
        if 400 <= exc.status < 500 and exc.status != 429:
            server.metrics.refused_with(exc.status)
        return JSONResponse(
            error_body(exc.message, exc.kind, code=exc.code, **exc.extra),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: HTTPRequest, exc: HTTPException) -> JSONResponse:
        """No such path or method: OpenAI's shape too, so every client reads it."""
        server.metrics.refused_with(exc.status_code)
        return JSONResponse(
            error_body(
                f"{exc.detail}: see GET /v1/models and the README.", "invalid_request_error"
            ),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: HTTPRequest, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        return JSONResponse(
            error_body(
                f"internal error ({type(exc).__name__}); see the server log.", "server_error"
            ),
            status_code=500,
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ready = server.ready
        return JSONResponse(
            {"status": "ok" if ready else "shutting down", "models": len(server.router.specs)},
            status_code=200 if ready else 503,
        )

    @app.get("/v1/models")
    async def models(request: HTTPRequest) -> JSONResponse:
        _namespace(server, request)
        names = [ROUTE_MODEL, *server.router.specs]
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": 0, "owned_by": "sls-router"}
                    for n in names
                ],
            }
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: HTTPRequest) -> Response:
        started = time.perf_counter()
        namespace = _namespace(server, request)
        body = await _json_body(request)
        call = _parse(server, body, namespace)
        if call.stream:
            return await _stream(server, call, started)
        response = await _answer(server, call)
        server.metrics.answered(
            response, pinned=call.request.model is not None, wall_s=time.perf_counter() - started
        )
        return JSONResponse(chat_completion(response), headers=routing_headers(response))

    @app.post("/v1/feedback")
    async def feedback(request: HTTPRequest) -> JSONResponse:
        namespace = _namespace(server, request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise APIError(400, 'pass {"request_id": "...", "score": 0..1, "source": "user"}.')
        request_id, score = body.get("request_id"), body.get("score")
        source = body.get("source", "user")
        if not isinstance(request_id, str):
            raise APIError(400, "request_id: pass the id from the answer's sls.sls_request_id.")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise APIError(400, f"score: {score!r}; pass a number in [0, 1] (1 = right).")
        try:
            await asyncio.to_thread(
                server.router.feedback, request_id, score, source, namespace=namespace
            )
        except UnknownEntryError as exc:
            raise APIError(404, str(exc), code="unknown_request") from None
        except InvalidInputError as exc:
            raise APIError(400, str(exc)) from None
        server.metrics.feedback_taken(source)
        return JSONResponse({"ok": True, "request_id": request_id})

    # the two readers of the router's counters run in the thread pool: with a shared
    # store, counting the cache's entries is a query
    @app.get("/metrics")
    def metrics(request: HTTPRequest) -> Response:
        _operator(server, request)
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(_static("dashboard.html"))

    @app.get("/dashboard/dashboard.js")
    async def dashboard_js() -> Response:
        return Response(_static("dashboard.js"), media_type="text/javascript")

    @app.get("/dashboard/data")
    def dashboard_data(request: HTTPRequest) -> JSONResponse:
        _operator(server, request)
        m = server.metrics
        return JSONResponse(
            {
                "now": time.time(),
                "bucket_s": m.bucket_s,
                "totals": m.totals(),
                "series": m.series(),
                "recent": m.recent(),
                "overhead_ms": m.overhead_ms(),
                "models": list(server.router.specs),
            }
        )

    return app


def _static(name: str) -> str:
    return (resources.files("sls_router.serve") / "static" / name).read_text(encoding="utf-8")


async def _sample_cache(server: Server) -> None:
    """Every dashboard bucket, the cache's judged hits (off the event loop)."""
    while True:
        try:
            await asyncio.to_thread(server.metrics.sample_cache)
        except Exception:  # noqa: BLE001 - a failed read must not end the sampling
            logger.exception("reading the cache's counters failed; retrying")
        await asyncio.sleep(server.metrics.bucket_s)


def _shut_down(server: Server) -> None:
    """Save the state (when opened from one) and close the router, which flushes the
    PostgreSQL store's queued writes."""
    try:
        if server.save_on_exit:
            server.router.save()
    finally:
        server.router.close()


def _namespace(server: Server, request: HTTPRequest) -> str:
    """The tenant of a request from its bearer key; "default" when no tenants are set."""
    tenants = server.config.tenants
    if not tenants:
        return "default"
    digest = _bearer_digest(request)
    if digest is None:
        raise APIError(
            401,
            "no API key: send the tenant's key as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )
    for known, namespace in tenants.items():
        if hmac.compare_digest(known, digest):
            return namespace
    raise APIError(401, "the API key is not valid for this server.", code="invalid_api_key")


def _operator(server: Server, request: HTTPRequest) -> None:
    """The counters show every tenant's traffic (request ids, models, costs): with an
    [operator] key, only that key reads them."""
    expected = server.config.operator_key
    if expected is None:
        return
    digest = _bearer_digest(request)
    if digest is None or not hmac.compare_digest(expected, digest):
        raise APIError(
            401,
            "the counters need the operator's key: send it as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )


def _bearer_digest(request: HTTPRequest) -> str | None:
    """The sha256 of the request's bearer key, None without one."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key_digest(key.strip())


async def _json_body(request: HTTPRequest) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise APIError(413, f"the body is over {MAX_BODY_BYTES} bytes; send less.")
    chunks, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise APIError(413, f"the body is over {MAX_BODY_BYTES} bytes; send less.")
        chunks.append(part)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"the body is not valid JSON ({str(exc)[:200]}).") from None


def _parse(server: Server, body: Any, namespace: str) -> ChatCall:
    try:
        call = parse_chat_request(body, namespace=namespace, route_name=ROUTE_MODEL)
    except InvalidInputError as exc:
        raise APIError(400, str(exc)) from None
    specs = server.router.specs
    pinned = call.request.model
    if pinned is not None and pinned not in specs:
        raise APIError(
            404,
            f"the model {pinned!r} does not exist here; use {ROUTE_MODEL!r} to route or one "
            f"of {sorted(specs)} (GET /v1/models).",
            code="model_not_found",
            param="model",
        )
    window = max(s.context_window for n, s in specs.items() if pinned in (None, n))
    tokens = estimate_tokens(call.request.text)
    if tokens > window:
        raise APIError(
            400,
            f"the messages are about {tokens} tokens, over the {window}-token context "
            "window of the largest model that could answer; shorten them.",
            code="context_length_exceeded",
            param="messages",
        )
    return call


async def _answer(server: Server, call: ChatCall) -> RouterResponse:
    try:
        return await server.router.acomplete(call.request)
    except BaseException as exc:
        raise _api_error(server, exc) from None


def _api_error(server: Server, exc: BaseException) -> BaseException:
    """The router's errors as OpenAI errors; anything else passes through unchanged."""
    if isinstance(exc, BackendError):
        server.metrics.failed(exc)
        attempts = [{"model": m, "error": why} for m, why in exc.attempts]
        waits = [_RETRY_AFTER.search(why) for _, why in exc.attempts]
        if exc.attempts and all(waits):
            seconds = min(float(w.group(1)) for w in waits if w is not None)
            return APIError(
                429,
                f"every model is rate-limited; retry after {seconds:g} s.",
                "rate_limit_error",
                code="rate_limit_exceeded",
                headers={"retry-after": str(max(1, math.ceil(seconds)))},
                attempts=attempts,
            )
        return APIError(
            502, str(exc), "upstream_error", code="all_models_failed", attempts=attempts
        )
    if isinstance(exc, (InvalidInputError, UnknownEntryError)):
        return APIError(400, str(exc))
    if isinstance(exc, SLSRouterError):
        return APIError(500, str(exc), "server_error")
    return exc


async def _stream(server: Server, call: ChatCall, started: float) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format. The first item is awaited before
    the response starts, so a request that fails outright gets a proper status."""
    items = cast(AsyncGenerator[Any, None], server.router.astream(call.request))
    try:
        first = await anext(items)
    except BaseException as exc:
        await items.aclose()
        raise _api_error(server, exc) from None
    request_id = call.request.id
    created = int(time.time())

    async def events() -> AsyncIterator[str]:
        item: Any = first
        try:
            yield _sse(
                chunk(
                    request_id,
                    call.model,
                    created,
                    {"role": "assistant", "content": ""},
                    include_usage=call.include_usage,
                )
            )
            while not isinstance(item, RouterResponse):
                if item.text:
                    yield _sse(
                        chunk(
                            request_id,
                            call.model,
                            created,
                            {"content": item.text},
                            include_usage=call.include_usage,
                        )
                    )
                item = await anext(items)
            server.metrics.answered(
                item,
                pinned=call.request.model is not None,
                wall_s=time.perf_counter() - started,
            )
            for part in final_chunks(item, call.model, created, call.include_usage):
                yield _sse(part)
        except Exception as exc:  # noqa: BLE001 - the stream already started: report in it
            error = _api_error(server, exc)
            message = error.message if isinstance(error, APIError) else "internal error"
            yield _sse(error_body(message, "server_error"))
            if not isinstance(error, APIError):
                logger.exception("a stream failed after it started")
        finally:
            await items.aclose()
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"x-sls-request-id": request_id, "cache-control": "no-cache"},
    )


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
