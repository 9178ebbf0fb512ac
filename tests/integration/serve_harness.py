"""A real `sls-router serve` app under uvicorn on 127.0.0.1, in a thread, for the tests
that talk to it with real clients (openai, langchain-openai, chromium)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import uvicorn
from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatResult

from sls_router.serve import open_server
from sls_router.serve.app import Server, create_app

TENANT_KEYS = {"team-a": "key-a-0123456789", "team-b": "key-b-9876543210"}

POOL_TOML = """
reference_model = "j2-ultra"
embedder = "hashing"

[router]
random_state = 0
background_updates = false

[[replay]]
bundled = "logparsing"
latency = "{latency}"
models = ["llama-2-7b", "mixtral-8x7b", "j2-ultra"]

[[models]]
name = "tool-model"
class = "langchain_sls_router.testing:ScriptedToolChatModel"
kwargs = {{ tag = "tools" }}
price = [1.0, 2.0]

{tenants}
"""


def tenants_toml(env_prefix: str = "SLS_TEST_KEY_") -> str:
    return "\n".join(
        f'[[tenants]]\nnamespace = "{ns}"\nkey_env = "{env_prefix}{i}"\n'
        for i, ns in enumerate(TENANT_KEYS)
    )


def tenant_env(env_prefix: str = "SLS_TEST_KEY_") -> dict[str, str]:
    return {f"{env_prefix}{i}": key for i, key in enumerate(TENANT_KEYS.values())}


def prompts(n: int, skip: int = 0) -> list[str]:
    """The first n distinct prompts of the bundled log-parsing replay (after `skip`)."""
    path = resources.files("sls_router") / "data" / "replay" / "logparsing.jsonl.gz"
    out: list[str] = []
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        for line in fh:
            prompt = json.loads(line)["prompt"]
            if prompt not in out:
                out.append(prompt)
            if len(out) >= n + skip:
                break
    return out[skip:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    url: str
    server: Server
    uvicorn: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self, timeout_s: float = 60.0) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the server did not shut down"


def write_pool(directory: Path, *, latency: str = "none", tenants: bool = True) -> Path:
    path = directory / "pool.toml"
    path.write_text(POOL_TOML.format(latency=latency, tenants=tenants_toml() if tenants else ""))
    return path


def start(config: Path, state: str | None = None, **options) -> Running:
    server = open_server(config, state, **options)
    port = free_port()
    userver = uvicorn.Server(
        uvicorn.Config(
            create_app(server),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=30,
        )
    )
    thread = threading.Thread(target=userver.run, daemon=True, name="sls-serve-test")
    thread.start()
    deadline = time.monotonic() + 30
    while not userver.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{port}", server, userver, thread)


class RateLimited(Exception):
    """A provider's 429, carrying the back-off it asked for (as `retry_after`)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after} s")
        self.retry_after = retry_after


class RateLimitedChatModel(BaseChatModel):
    """A LangChain chat model whose provider always answers 429 (pool.toml `class`)."""

    retry_after: float = 3.0

    @property
    def _llm_type(self) -> str:
        return "rate-limited"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise RateLimited(self.retry_after)
