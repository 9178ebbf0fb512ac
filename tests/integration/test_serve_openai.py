"""`sls-router serve` against the official openai client: create, stream, tools, pinned
model, feedback, tenants, over the bundled log-parsing replay."""

from __future__ import annotations

import httpx
import openai
import pytest
from serve_harness import TENANT_KEYS, prompts, start, tenant_env, write_pool

KEY_A, KEY_B = TENANT_KEYS["team-a"], TENANT_KEYS["team-b"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for name, value in tenant_env().items():
            mp.setenv(name, value)
        running = start(write_pool(tmp_path_factory.mktemp("serve")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(running):
    return openai.OpenAI(base_url=running.base_url, api_key=KEY_A, max_retries=0)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_create_answers_with_the_routing_facts_and_the_second_time_from_the_cache(client):
    [prompt] = prompts(1)
    raw = client.chat.completions.with_raw_response.create(
        model="sls-router", messages=user(prompt), temperature=0
    )
    first = raw.parse()
    facts = first.model_extra["sls"]
    assert first.object == "chat.completion" and first.choices[0].finish_reason == "stop"
    assert first.model in {"llama-2-7b", "mixtral-8x7b", "j2-ultra", "tool-model"}
    assert first.choices[0].message.content and facts["sls_model"] == first.model
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    assert facts["sls_cache_hit"] is False and facts["sls_cost_usd"] > 0
    assert 0 <= facts["sls_predicted_quality"] <= 1 and facts["sls_tried"][-1] == first.model
    assert raw.headers["x-sls-request-id"] == facts["sls_request_id"]
    assert raw.headers["x-sls-model"] == first.model
    assert raw.headers["x-sls-cache-hit"] == "false"

    again = client.chat.completions.create(model="sls-router", messages=user(prompt), temperature=0)
    assert again.model_extra["sls"]["sls_cache_hit"] is True
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.model_extra["sls"]["sls_cost_usd"] == 0.0


def test_stream_sends_openai_chunks_with_usage_last(client):
    [prompt] = prompts(1, skip=1)
    chunks = list(
        client.chat.completions.create(
            model="sls-router",
            messages=user(prompt),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model_extra["sls"]["sls_model"] == finish[0].model
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])  # usage counted once
    # the same request again: the cache's answer, replayed as a stream, is the same text
    cached = client.chat.completions.create(model="sls-router", messages=user(prompt), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in cached if c.choices) == text


def test_tools_are_called_and_their_results_answered(client):
    question = user("What is the weather in 'Paris'? Use get_weather.")
    first = client.chat.completions.create(model="sls-router", messages=question, tools=[WEATHER])
    [call] = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and first.model == "tool-model"
    assert call.function.name == "get_weather" and '"Paris"' in call.function.arguments
    turns = [
        *question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    answer = client.chat.completions.create(model="sls-router", messages=turns, tools=[WEATHER])
    assert "sunny, 21 C" in answer.choices[0].message.content
    streamed = list(
        client.chat.completions.create(
            model="sls-router", messages=question, tools=[WEATHER], stream=True
        )
    )
    deltas = [d for c in streamed if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_a_pinned_model_answers_itself_every_time(client):
    [prompt] = prompts(1, skip=2)
    for _ in range(2):
        answer = client.chat.completions.create(model="llama-2-7b", messages=user(prompt))
        assert answer.model == "llama-2-7b"
        assert answer.model_extra["sls"]["sls_tried"] == ["llama-2-7b"]
        assert answer.model_extra["sls"]["sls_cache_hit"] is False


def test_feedback_is_taken_once_per_tenant_and_counted(running, client):
    [prompt] = prompts(1, skip=3)
    answer = client.chat.completions.create(model="sls-router", messages=user(prompt))
    request_id = answer.model_extra["sls"]["sls_request_id"]
    before = running.server.metrics.totals()["feedback"]
    ok = client.post(
        "/feedback", cast_to=httpx.Response, body={"request_id": request_id, "score": 1.0}
    )
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert running.server.metrics.totals()["feedback"] == before + 1
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'sls_feedback_total{source="user"}' in metrics
    with pytest.raises(openai.NotFoundError, match="unknown"):
        client.post("/feedback", cast_to=httpx.Response, body={"request_id": "nope", "score": 1})
    with pytest.raises(openai.BadRequestError, match="score"):
        client.post(
            "/feedback", cast_to=httpx.Response, body={"request_id": request_id, "score": 7}
        )
    other = openai.OpenAI(base_url=client.base_url, api_key=KEY_B, max_retries=0)
    with pytest.raises(openai.NotFoundError):  # another tenant's request looks unknown
        other.post("/feedback", cast_to=httpx.Response, body={"request_id": request_id, "score": 0})


def test_tenants_see_only_their_own_cache(running, client):
    [prompt] = prompts(1, skip=4)
    client.chat.completions.create(model="sls-router", messages=user(prompt))
    assert client.chat.completions.create(model="sls-router", messages=user(prompt)).model_extra[
        "sls"
    ]["sls_cache_hit"]
    other = openai.OpenAI(base_url=client.base_url, api_key=KEY_B, max_retries=0)
    answer = other.chat.completions.create(model="sls-router", messages=user(prompt))
    assert answer.model_extra["sls"]["sls_cache_hit"] is False


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_request_without_a_valid_key_is_refused(client, key):
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    response = httpx.post(
        f"{client.base_url}chat/completions",
        json={"model": "sls-router", "messages": user("hello")},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0).models.list()


def test_models_and_health(running, client):
    names = [m.id for m in client.models.list()]
    assert names[0] == "sls-router" and {"llama-2-7b", "tool-model"} <= set(names)
    health = httpx.get(f"{running.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_the_openai_backend_reaches_an_openai_compatible_server(running):
    """The pool's OpenAI-compatible kind, pointed at this very server."""
    from sls_router import Request
    from sls_router.serve.openai_backend import OpenAIBackend

    [prompt] = prompts(1, skip=5)
    backend = OpenAIBackend(running.base_url, "llama-2-7b", api_key=KEY_A)
    completion = backend.complete(Request(messages=user(prompt)))
    assert completion.text and completion.usage.output_tokens > 0
    parts = list(backend.stream(Request(messages=user(prompt))))
    assert "".join(p.text for p in parts) == completion.text
    assert parts[-1].completion is not None and parts[-1].completion.text == completion.text
    tools = Request(messages=user("weather in 'Oslo' please"), tools=[WEATHER])
    called = OpenAIBackend(running.base_url, "tool-model", api_key=KEY_A).complete(tools)
    assert called.tool_calls and called.tool_calls[0]["args"] == {"city": "Oslo"}
