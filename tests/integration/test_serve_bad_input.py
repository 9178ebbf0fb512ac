"""Bad input to `sls-router serve`: each gets OpenAI's error shape with the right status,
the worker keeps serving, and nothing stored before is lost."""

from __future__ import annotations

import json

import httpx
import pytest
from serve_harness import TENANT_KEYS, prompts, start, tenant_env, write_pool

from sls_router.errors import BackendError
from sls_router.serve.app import _api_error

KEY = TENANT_KEYS["team-a"]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for name, value in tenant_env().items():
            mp.setenv(name, value)
        running = start(write_pool(tmp_path_factory.mktemp("serve-bad")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stored(running):
    """One answer cached and judged before any bad input arrives."""
    [prompt] = prompts(1)
    body = {"model": "sls-router", "messages": [{"role": "user", "content": prompt}]}
    first = httpx.post(f"{running.base_url}/chat/completions", json=body, headers=AUTH).json()
    feedback = {"request_id": first["sls"]["sls_request_id"], "score": 1}
    assert httpx.post(f"{running.base_url}/feedback", json=feedback, headers=AUTH).is_success
    return body, first["choices"][0]["message"]["content"]


def _chat(**fields) -> dict:
    return {"model": "sls-router", "messages": [{"role": "user", "content": "hi"}], **fields}


def _raw(obj) -> bytes:
    return json.dumps(obj).encode()


BAD = {
    "not JSON": (b'{"model": "sls-router", "messages": [', 400, None),
    "a JSON list": (b"[]", 400, None),
    "NaN temperature": (
        b'{"model": "sls-router", "messages": [{"role": "user", "content": "x"}], '
        b'"temperature": NaN}',
        400,
        None,
    ),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, 400, None),
    "model a number": (_raw(_chat(model=5)), 400, None),
    "messages a string": (_raw(_chat(messages="hi")), 400, None),
    "unknown role": (_raw(_chat(messages=[{"role": "wizard", "content": "x"}])), 400, None),
    "content a number": (_raw(_chat(messages=[{"role": "user", "content": 12}])), 400, None),
    "an image part": (
        _raw(_chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}])),
        400,
        None,
    ),
    "empty content": (_raw(_chat(messages=[{"role": "user", "content": " "}])), 400, None),
    "a lone surrogate": (
        b'{"model": "sls-router", "messages": [{"role": "user", "content": "\\ud800"}]}',
        400,
        None,
    ),
    "temperature a string": (_raw(_chat(temperature="hot")), 400, None),
    "max_tokens negative": (_raw(_chat(max_tokens=-1)), 400, None),
    "stream a string": (_raw(_chat(stream="yes")), 400, None),
    "tools a string": (_raw(_chat(tools="all")), 400, None),
    "tool args not JSON": (
        _raw(
            _chat(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{"}}],
                    }
                ]
            )
        ),
        400,
        None,
    ),
    "a 1 MB message": (
        _raw(_chat(messages=[{"role": "user", "content": "log line " * 120_000}])),
        400,
        "context_length_exceeded",
    ),
    "a 9 MB body": (b" " * (9 * 1024 * 1024), 413, None),
    "an unknown model": (_raw(_chat(model="gpt-17")), 404, "model_not_found"),
    "a prompt no pinned model recorded": (
        _raw(_chat(model="llama-2-7b")),
        502,
        "all_models_failed",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_its_status_and_loses_nothing(running, stored, name):
    content, status, code = BAD[name]
    before = running.server.router.stats()["cache"]["entries"]
    response = httpx.post(
        f"{running.base_url}/chat/completions",
        content=content,
        headers={**AUTH, "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code
    if status == 502:
        assert error["attempts"][0]["model"] == "llama-2-7b"
    # still serving, and what was stored before is still there
    body, text = stored
    again = httpx.post(f"{running.base_url}/chat/completions", json=body, headers=AUTH).json()
    assert again["sls"]["sls_cache_hit"] and again["choices"][0]["message"]["content"] == text
    assert running.server.router.stats()["cache"]["entries"] == before


def test_bad_feedback_and_a_missing_key(running, stored):
    url = f"{running.base_url}/feedback"
    assert httpx.post(url, content=b"{", headers=AUTH).status_code == 400
    assert httpx.post(url, json=["x"], headers=AUTH).status_code == 400
    assert httpx.post(url, json={"request_id": 1, "score": 1}, headers=AUTH).status_code == 400
    assert httpx.post(url, json={"request_id": "x", "score": "1"}, headers=AUTH).status_code == 400
    missing = httpx.post(f"{running.base_url}/chat/completions", json=stored[0])
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{running.url}/healthz").status_code == 200


def test_an_unknown_path_or_method_gets_the_error_shape(running):
    for response in (
        httpx.get(f"{running.base_url}/nope"),
        httpx.get(f"{running.base_url}/feedback"),
    ):
        assert response.status_code in (404, 405)
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_every_model_rate_limited_is_429_with_retry_after_and_the_breaker_shows(tmp_path):
    config = tmp_path / "pool.toml"
    config.write_text(
        'embedder = "hashing"\n'
        + "".join(
            f'[[models]]\nname = "{name}"\nclass = "serve_harness:RateLimitedChatModel"\n'
            f"kwargs = {{ retry_after = {wait} }}\nprice = [1, 1]\n"
            for name, wait in (("a", 2.5), ("b", 7))
        )
    )
    running = start(config)
    try:
        response = httpx.post(f"{running.base_url}/chat/completions", json=_chat())
        metrics = httpx.get(f"{running.url}/metrics").text
    finally:
        running.stop()
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and len(error["attempts"]) == 2
    assert 'sls_model_breaker_open{model="a"} 1.0' in metrics


def test_rate_limits_mixed_with_failures_are_502(running):
    mixed = BackendError("x", [("a", "X (retry after 2 s)"), ("b", "ConnectionError: down")])
    assert _api_error(running.server, mixed).status == 502  # type: ignore[attr-defined]
