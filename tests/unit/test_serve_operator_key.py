"""The server's counters show every tenant's traffic: with an [operator] key in
pool.toml, /metrics and the dashboard's data answer only that key."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sls_router.serve import open_server  # noqa: E402
from sls_router.serve.app import create_app  # noqa: E402
from sls_router.serve.config import key_digest  # noqa: E402

TENANT, OPERATOR = "tenant-key-0123", "operator-key-4567"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = tmp_path_factory.mktemp("operator") / "pool.toml"
    path.write_text(
        "embedder = 'hashing'\n[[replay]]\nbundled = 'logparsing'\n"
        f"[[tenants]]\nnamespace = 'a'\nkey_sha256 = '{key_digest(TENANT)}'\n"
        f"[operator]\nkey_sha256 = '{key_digest(OPERATOR)}'\n",
        encoding="utf-8",
    )
    server = open_server(path)
    yield TestClient(create_app(server))
    server.router.close()


@pytest.mark.parametrize("url", ["/metrics", "/dashboard/data"])
def test_only_the_operator_reads_the_counters(client, url):
    for key in (None, TENANT, "wrong"):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        refused = client.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert "operator" in refused.json()["error"]["message"]
    answered = client.get(url, headers={"Authorization": f"Bearer {OPERATOR}"})
    assert answered.status_code == 200
    assert ("sls_" in answered.text) if url == "/metrics" else ("recent" in answered.json())


def test_the_dashboard_page_holds_no_data_and_needs_no_key(client):
    assert client.get("/dashboard").status_code == 200
    assert client.get("/dashboard/dashboard.js").status_code == 200


def test_the_operator_key_is_not_a_tenant_key(client):
    response = client.post(
        "/v1/chat/completions",
        json={"model": "sls-router", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {OPERATOR}"},
    )
    assert response.status_code == 401
