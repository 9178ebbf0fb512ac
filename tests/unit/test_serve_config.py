"""pool.toml: a good file becomes the router's pool; a bad one is refused before the
server starts, naming the line and the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sls_router.errors import ConfigurationError
from sls_router.serve.config import key_digest, load_config
from sls_router.serve.openai_backend import OpenAIBackend
from sls_router.serve.pool import build_pool

EXAMPLE = Path(__file__).parents[2] / "examples" / "serve" / "pool.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def test_the_example_pool_is_every_model_of_the_bundled_replay():
    config = load_config(EXAMPLE)
    pool = build_pool(config)
    names = [spec.name for spec, _ in pool]
    assert len(names) == 8 and "j2-ultra" in names and config.reference_model == "j2-ultra"
    assert all(backend.sleep for _, backend in pool)  # latency = "modelled"
    assert config.tenants == {}


def test_every_kind_of_model_and_tenant(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVIDER_KEY", "sk-test")
    monkeypatch.setenv("TEAM_KEY", "team-secret")
    replay = Path(__file__).parents[2] / "sls_router" / "data" / "replay"
    path = _write(
        tmp_path,
        f"""
embedder = "hashing"
[router]
preset = "cost"
[[replay]]
file = "{replay / "humaneval.jsonl.gz"}"
models = ["gpt-4"]
[[models]]
name = "remote"
base_url = "http://127.0.0.1:1/v1"
model = "provider-name"
api_key_env = "PROVIDER_KEY"
price = [0.15, 0.6]
supports_tools = true
timeout_s = 5
[[models]]
name = "scripted"
class = "langchain_sls_router.testing:ScriptedToolChatModel"
kwargs = {{ tag = "s" }}
price = [0, 0]
[[tenants]]
namespace = "team"
key_env = "TEAM_KEY"
[[tenants]]
namespace = "other"
key_sha256 = "{hashlib.sha256(b"other-secret").hexdigest()}"
""",
    )
    config = load_config(path)
    assert config.router_options == {"preset": "cost", "embedder": "hashing"}
    assert config.tenants == {
        key_digest("team-secret"): "team",
        key_digest("other-secret"): "other",
    }
    specs = {spec.name: (spec, backend) for spec, backend in build_pool(config)}
    assert list(specs) == ["gpt-4", "remote", "scripted"]
    remote, backend = specs["remote"]
    assert isinstance(backend, OpenAIBackend) and backend.model == "provider-name"
    assert backend.api_key == "sk-test" and remote.timeout_s == 5
    assert (remote.input_per_mtok, remote.output_per_mtok, remote.supports_tools) == (
        0.15,
        0.6,
        True,
    )
    assert specs["scripted"][0].supports_tools  # read from the LangChain class


BAD = [
    ("[[models]\nname = 1", "line 1", "not valid TOML"),
    ("", None, "no models"),
    ("colour = 'red'\n[[replay]]\nbundled = 'logparsing'", "line 1", "unknown key 'colour'"),
    ("[[replay]]\nbundled = 'nope'", "line 2", "no bundled replay file"),
    ("[[replay]]\nfile = 'missing.jsonl'", "line 2", "relative to pool.toml"),
    ("[[replay]]\nbundled = 'logparsing'\nlatency = 'real'", "line 3", 'write "modelled"'),
    ("[[replay]]\nbundled = 'logparsing'\nmodels = ['gpt-9']", "line 1", "no model 'gpt-9'"),
    ("[[models]]\nname = 'm'\nprice = [1, 1]", "line 1", "add base_url"),
    ("[[models]]\nname = 'm'\nbase_url = 'http://x'\nprice = [1]", "line 4", "price = [input"),
    ("[[models]]\nname = 'm'\nbase_url = 'http://x'\nprice = [1, 1]\nbase = 1", "line 5", "'base'"),
    (
        "[[models]]\nname = 'm'\nbase_url = 'http://x'\nprice = [1, 1]\ntimeout_s = 'slow'",
        "line 5",
        "timeout_s",
    ),
    (
        "[[models]]\nname = 'm'\nbase_url = 'http://x'\nprice = [1, 1]\napi_key_env = 'NO_VAR'",
        "line 1",
        "$NO_VAR, which is unset",
    ),
    (
        "[[models]]\nname = 'm'\nclass = 'no_such_pkg:Model'\nprice = [1, 1]",
        "line 1",
        "cannot import no_such_pkg:Model",
    ),
    ("[[models]]\nname = 'sls-router'\nbase_url = 'h'\nprice = [0, 0]", "line 2", "rename"),
    ("[router]\nspeed = 'max'\n[[replay]]\nbundled = 'logparsing'", "line 2", "no option 'speed'"),
    (
        "reference_model = 'gpt-9'\n[[replay]]\nbundled = 'logparsing'",
        "line 1",
        "not in the pool",
    ),
    (
        "[[replay]]\nbundled = 'logparsing'\n[[tenants]]\nnamespace = 'a'\nkey = 'secret'",
        "line 5",
        "no key 'key'",
    ),
    (
        "[[replay]]\nbundled = 'logparsing'\n[[tenants]]\nnamespace = 'a'\nkey_env = 'NO_VAR_X'",
        "line 5",
        "export its API key",
    ),
    (
        "[[replay]]\nbundled = 'logparsing'\n[[tenants]]\nnamespace = 'a'\nkey_sha256 = 'ab'",
        "line 5",
        "64 hex digits",
    ),
    ("[[replay]]\nbundled = 'logparsing'\n[operator]\nkey = 'secret'", "line 4", "no key 'key'"),
    (
        "[[replay]]\nbundled = 'logparsing'\n[operator]\nkey_env = 'NO_VAR_X'",
        "line 4",
        "export its API key",
    ),
    (
        f"[[replay]]\nbundled = 'logparsing'\n[[tenants]]\nnamespace = 'a'\n"
        f"key_sha256 = '{'a' * 64}'\n[operator]\nkey_sha256 = '{'a' * 64}'",
        "line 6",
        "its own",
    ),
]


@pytest.mark.parametrize(("text", "line", "fix"), BAD)
def test_a_bad_file_names_the_line_and_the_fix(tmp_path, text, line, fix):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        build_pool(load_config(path))
    message = str(info.value)
    assert str(path) in message and fix in message
    if line is not None:
        assert line in message


def test_a_missing_file_says_to_pass_one(tmp_path):
    with pytest.raises(ConfigurationError, match="pass --config"):
        load_config(tmp_path / "nope.toml")


def test_the_command_refuses_a_bad_file_before_binding(tmp_path, capsys):
    from sls_router.bench.cli import main

    path = _write(tmp_path, "[[models]]\nname = 'x'\nbase_url = 'http://h'\nprice = [1]\n")
    assert main(["serve", "--config", str(path), "--port", "1"]) == 2
    assert "line 4" in capsys.readouterr().err


def test_the_operator_key_is_kept_as_its_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("SLS_TEST_OPERATOR", "op-secret")
    config = load_config(
        _write(
            tmp_path,
            "[[replay]]\nbundled = 'logparsing'\n[operator]\nkey_env = 'SLS_TEST_OPERATOR'",
        )
    )
    assert config.operator_key == key_digest("op-secret")
    assert load_config(_write(tmp_path, "[[replay]]\nbundled = 'logparsing'")).operator_key is None
