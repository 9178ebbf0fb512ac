"""Graceful shutdown: in-flight requests finish, the state is saved, and a server started
again on the same state has lost nothing; /healthz says when it is ready."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import psycopg
import pytest
from serve_harness import prompts, start, write_pool


def test_shutdown_finishes_in_flight_requests_and_saves_the_state(tmp_path):
    config = write_pool(tmp_path, latency="modelled", tenants=False)
    state = str(tmp_path / "state")
    running = start(config, state)
    client = openai.OpenAI(base_url=running.base_url, api_key="any", max_retries=0)
    first, slow = prompts(2, skip=10)
    answer = client.chat.completions.create(
        model="sls-router", messages=[{"role": "user", "content": first}]
    )
    request_id = answer.model_extra["sls"]["sls_request_id"]
    assert httpx.post(
        f"{running.base_url}/feedback", json={"request_id": request_id, "score": 1}
    ).is_success

    streamed: list = []

    def in_flight() -> None:  # a stream that waits its modelled latency (~1 s)
        streamed.extend(
            client.chat.completions.create(
                model="j2-ultra", messages=[{"role": "user", "content": slow}], stream=True
            )
        )

    worker = threading.Thread(target=in_flight)
    worker.start()
    deadline = time.monotonic() + 10
    while not running.uvicorn.server_state.tasks:  # wait until the request is in flight
        assert time.monotonic() < deadline
        time.sleep(0.005)
    running.stop()  # like SIGTERM: stop accepting, finish in-flight requests, save, close
    worker.join(30)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).strip()
    assert streamed[-1].choices[0].finish_reason == "stop", "the in-flight stream was cut"
    assert (tmp_path / "state" / "manifest.json").exists()

    again = start(config, state)
    try:
        reply = openai.OpenAI(base_url=again.base_url, api_key="any", max_retries=0)
        cached = reply.chat.completions.create(
            model="sls-router", messages=[{"role": "user", "content": first}]
        )
        assert cached.model_extra["sls"]["sls_cache_hit"]  # the saved cache answers
        assert cached.choices[0].message.content == answer.choices[0].message.content
        assert httpx.get(f"{again.url}/healthz").json()["status"] == "ok"
    finally:
        again.stop()


@pytest.mark.postgres
def test_shutdown_flushes_the_postgresql_store(tmp_path, new_database):
    """With a postgresql:// state, every feedback taken over HTTP is in the database once
    the server has shut down (the store's queued writes flushed on close)."""
    url = new_database()
    running = start(write_pool(tmp_path, tenants=False), url)
    client = openai.OpenAI(base_url=running.base_url, api_key="any", max_retries=0)
    ids = []
    for prompt in prompts(8, skip=20):
        answer = client.chat.completions.create(
            model="sls-router", messages=[{"role": "user", "content": prompt}]
        )
        ids.append(answer.model_extra["sls"]["sls_request_id"])
        feedback = {"request_id": ids[-1], "score": 1}
        assert httpx.post(f"{running.base_url}/feedback", json=feedback).is_success
    running.stop()
    with psycopg.connect(url) as conn:
        stored = {row[0] for row in conn.execute("SELECT request_id FROM sls_feedback")}
    assert set(ids) <= stored
