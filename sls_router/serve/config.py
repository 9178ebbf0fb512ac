"""pool.toml: the models the server routes among (how to reach each, its price), the
router's options and the tenants. Read and checked before the server starts; every
error names the file, the line and the fix.

```toml
reference_model = "j2-ultra"   # savings are estimated against this model's prices
embedder = "minilm"            # optional; the router's default otherwise

[router]                       # SmartRouter options, as they are (preset, lam, ...)
preset = "balanced"

[[replay]]                     # every model of a replay file (offline, recorded answers)
bundled = "logparsing"         # or file = "path/x.jsonl.gz", relative to this file
latency = "modelled"           # wait each answer's modelled latency; "none" answers at once
models = ["llama-2-7b"]        # optional: only these models of the file

[[models]]                     # an OpenAI-compatible endpoint
name = "gpt-4o-mini"
base_url = "https://api.example.com/v1"
model = "gpt-4o-mini"          # the provider's name for it (default: name)
api_key_env = "PROVIDER_API_KEY"   # the key's environment variable, never the key
price = [0.15, 0.60]           # USD per million input, output tokens
supports_tools = true

[[models]]                     # a LangChain chat model (needs langchain-sls-router)
name = "local"
class = "langchain_ollama:ChatOllama"
kwargs = { model = "llama3" }
price = [0, 0]

[[tenants]]                    # with tenants, every request needs one of their keys
namespace = "acme"
key_env = "ACME_API_KEY"       # or key_sha256 = "<hex sha256 of the key>"

[operator]                     # optional: /metrics and the dashboard's data need this key
key_env = "SLS_OPERATOR_KEY"   # or key_sha256 = "<hex sha256 of the key>"
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..types import ModelSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the serve extra installs tomli there
    import tomli as tomllib

# keys each kind of [[models]] entry takes, besides the shared ones
_SHARED_KEYS = {
    "name",
    "price",
    "supports_tools",
    "tier",
    "context_window",
    "timeout_s",
    "max_concurrency",
}
_OPENAI_KEYS = {"base_url", "model", "api_key_env"}
_LANGCHAIN_KEYS = {"class", "kwargs"}
_REPLAY_KEYS = {"file", "bundled", "latency", "models"}
_TENANT_KEYS = {"namespace", "key_env", "key_sha256"}
_OPERATOR_KEYS = {"key_env", "key_sha256"}
_TOP_KEYS = {"reference_model", "embedder", "router", "replay", "models", "tenants", "operator"}
ROUTE_MODEL = "sls-router"
"""The model name that asks the server to route; any pool model's name pins it."""


@dataclass(frozen=True)
class ModelEntry:
    """One [[models]] entry: how to reach a model ("openai" or "langchain")."""

    kind: str
    name: str
    line: int
    price: tuple[float, float]
    options: dict[str, Any]


@dataclass(frozen=True)
class ReplayEntry:
    """One [[replay]] table: recorded answers of every (or the listed) model of a file."""

    path: Path
    line: int
    sleep: bool
    models: tuple[str, ...] | None


@dataclass(frozen=True)
class ServeConfig:
    """A checked pool.toml; `tenants` maps the sha256 of each API key to its namespace;
    `operator_key` is the sha256 of the key that reads the counters (None: anyone may)."""

    path: Path
    models: list[ModelEntry] = field(default_factory=list)
    replays: list[ReplayEntry] = field(default_factory=list)
    tenants: dict[str, str] = field(default_factory=dict)
    operator_key: str | None = None
    reference_model: str | None = None
    router_options: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # where top-level keys were set

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}" + (f" line {line}" if line else "")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class _Lines:
    """Line numbers of tables and keys in the TOML text (tomllib gives none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def headers(self, table: str) -> list[int]:
        pattern = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
        return [i + 1 for i, line in enumerate(self.lines) if pattern.match(line)]

    def header(self, table: str) -> int | None:
        pattern = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
        return next((i + 1 for i, ln in enumerate(self.lines) if pattern.match(ln)), None)

    def key(self, key: str, start: int = 1) -> int:
        """The line of `key = ...` at or after line `start` (in the same table)."""
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start - 1, len(self.lines)):
            if i > start - 1 and self.lines[i].lstrip().startswith("["):
                break
            if pattern.match(self.lines[i]):
                return i + 1
        return start


def load_config(path: str | Path) -> ServeConfig:
    """Read and check `path` (pool.toml); raises ConfigurationError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the pool file {path} ({exc.strerror}); pass --config with the "
            "path of a pool.toml (see examples/serve/pool.toml)."
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not valid TOML ({exc}); fix the syntax there (strings in quotes, "
            "one key = value per line)."
        ) from None
    return parse_config(raw, path, text)


def parse_config(raw: dict[str, Any], path: Path, text: str = "") -> ServeConfig:
    lines = _Lines(text)

    def fail(line: int | None, message: str) -> ConfigurationError:
        return ConfigurationError(f"{path}" + (f" line {line}" if line else "") + f": {message}")

    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise fail(
            lines.key(unknown[0]) if text else None,
            f"unknown key {unknown[0]!r}; the file takes {sorted(_TOP_KEYS)}.",
        )
    models = [
        _model_entry(item, i, path, lines, fail) for i, item in enumerate(_tables(raw, "models"))
    ]
    replays = [
        _replay_entry(item, i, path, lines, fail) for i, item in enumerate(_tables(raw, "replay"))
    ]
    if not models and not replays:
        raise fail(
            None,
            "no models: add a [[models]] entry (base_url or class) or a [[replay]] "
            "table (bundled or file) for each model the server may call.",
        )
    router = raw.get("router", {})
    router_line = lines.header("router")
    if not isinstance(router, dict):
        raise fail(router_line, "[router] must be a table of SmartRouter options.")
    from ..router import SmartRouter  # the options it takes are its signature's

    allowed = set(inspect.signature(SmartRouter.__init__).parameters) - {"self", "pool"}
    for key in router:
        if key not in allowed:
            raise fail(
                lines.key(key, router_line or 1),
                f"[router] has no option {key!r}; use some of {sorted(allowed - {'embedder'})}.",
            )
    options = dict(router)
    if "embedder" in raw:
        if not isinstance(raw["embedder"], str):
            raise fail(lines.key("embedder"), "embedder must be a name such as 'minilm'.")
        options["embedder"] = raw["embedder"]
    reference = raw.get("reference_model")
    if reference is not None and not isinstance(reference, str):
        raise fail(lines.key("reference_model"), "reference_model must be a model's name.")
    tenants = _tenants(_tables(raw, "tenants"), lines, fail)
    operator_key = _operator_key(raw.get("operator"), tenants, lines, fail)
    return ServeConfig(
        path=path,
        models=models,
        replays=replays,
        tenants=tenants,
        operator_key=operator_key,
        reference_model=reference,
        router_options=options,
        lines={"reference_model": lines.key("reference_model") if reference else 0},
    )


def _tables(raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = raw.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigurationError(
            f"{name} must be an array of tables: write each one under its own [[{name}]]."
        )
    return items


def _model_entry(item: dict[str, Any], index: int, path: Path, lines: _Lines, fail) -> ModelEntry:
    headers = lines.headers("models")
    start = headers[index] if index < len(headers) else 0
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(start, 'a [[models]] entry needs name = "..." (the name clients pin).')
    if name == ROUTE_MODEL:
        raise fail(
            lines.key("name", start),
            f"{ROUTE_MODEL!r} is the name that asks the server to route; rename the model.",
        )
    if "base_url" in item and "class" in item:
        raise fail(start, f"model {name!r} has both base_url and class; keep one of them.")
    if "base_url" in item:
        kind, keys = "openai", _OPENAI_KEYS
    elif "class" in item:
        kind, keys = "langchain", _LANGCHAIN_KEYS
    else:
        raise fail(
            start,
            f"model {name!r} says not how to reach it: add base_url (an OpenAI-compatible "
            "endpoint) or class (a LangChain chat model); recorded answers go in [[replay]].",
        )
    for key in item:
        if key not in _SHARED_KEYS | keys:
            raise fail(
                lines.key(key, start),
                f"model {name!r}: unknown key {key!r}; a {kind} model takes "
                f"{sorted(_SHARED_KEYS | keys)}.",
            )
    price = item.get("price")
    if (
        not isinstance(price, list)
        or len(price) != 2
        or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in price)
        or min(price) < 0
    ):
        raise fail(
            lines.key("price", start),
            f"model {name!r}: price = {price!r}; write price = [input, output] in USD per "
            "million tokens, e.g. [0.15, 0.60], or [0, 0] for a free local model.",
        )
    for key, kinds in (
        ("base_url", str),
        ("model", str),
        ("api_key_env", str),
        ("class", str),
        ("kwargs", dict),
        ("supports_tools", bool),
        ("tier", (int, float)),
        ("context_window", int),
        ("timeout_s", (int, float)),
        ("max_concurrency", int),
    ):
        if key in item and (
            not isinstance(item[key], kinds) or isinstance(item[key], bool) != (kinds is bool)
        ):
            raise fail(
                lines.key(key, start),
                f"model {name!r}: {key} = {item[key]!r} has the wrong type; "
                f"write a {_type_name(kinds)}.",
            )
    if kind == "langchain" and ":" not in item["class"] and "." not in item["class"]:
        raise fail(
            lines.key("class", start),
            f"model {name!r}: class = {item['class']!r}; write the import path, e.g. "
            "'langchain_openai:ChatOpenAI'.",
        )
    options = {k: v for k, v in item.items() if k not in ("name", "price")}
    return ModelEntry(kind, name, start, (float(price[0]), float(price[1])), options)


def _type_name(kinds: Any) -> str:
    names = {str: "string", dict: "table", bool: "true/false", int: "whole number"}
    if isinstance(kinds, tuple):
        return "number"
    return names.get(kinds, kinds.__name__)


def _replay_entry(item: dict[str, Any], index: int, path: Path, lines: _Lines, fail) -> ReplayEntry:
    headers = lines.headers("replay")
    start = headers[index] if index < len(headers) else 0
    for key in item:
        if key not in _REPLAY_KEYS:
            raise fail(
                lines.key(key, start),
                f"[[replay]] has no key {key!r}; it takes {sorted(_REPLAY_KEYS)}.",
            )
    if ("file" in item) == ("bundled" in item):
        raise fail(
            start,
            'a [[replay]] table needs one of file = "path.jsonl.gz" (relative to this '
            'file) or bundled = "logparsing" (humaneval, overruling).',
        )
    if "bundled" in item:
        source = resources.files("sls_router") / "data" / "replay" / f"{item['bundled']}.jsonl.gz"
        replay_path = Path(str(source))
        if not isinstance(item["bundled"], str) or not replay_path.exists():
            raise fail(
                lines.key("bundled", start),
                f"no bundled replay file {item['bundled']!r}; use logparsing, humaneval "
                'or overruling, or give file = "path".',
            )
    else:
        if not isinstance(item["file"], str):
            raise fail(lines.key("file", start), "file must be a path in quotes.")
        replay_path = (path.parent / item["file"]).resolve()
        if not replay_path.exists():
            raise fail(
                lines.key("file", start),
                f"replay file {replay_path} does not exist; the path is relative to "
                f"{path.name}: fix it.",
            )
    latency = item.get("latency", "none")
    if latency not in ("modelled", "none"):
        raise fail(
            lines.key("latency", start),
            f'latency = {latency!r}; write "modelled" (wait each answer\'s modelled '
            'latency) or "none" (answer at once).',
        )
    models = item.get("models")
    if models is not None and (
        not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models)
    ):
        raise fail(lines.key("models", start), "models must be a list of model names.")
    return ReplayEntry(
        replay_path, start, latency == "modelled", None if models is None else tuple(models)
    )


def _operator_key(item: Any, tenants: dict[str, str], lines: _Lines, fail) -> str | None:
    """The sha256 of the key that reads /metrics and the dashboard's data, if set."""
    if item is None:
        return None
    start = lines.header("operator") or 0
    if not isinstance(item, dict):
        raise fail(start, "[operator] must be a table with key_env or key_sha256.")
    for key in item:
        if key not in _OPERATOR_KEYS:
            raise fail(
                lines.key(key, start),
                f"[operator] has no key {key!r}; it takes {sorted(_OPERATOR_KEYS)}.",
            )
    digest = _key_digest_of(item, "[operator]", start, lines, fail)
    if digest in tenants:
        raise fail(
            start, f"[operator] shares its key with tenant {tenants[digest]!r}; give it its own."
        )
    return digest


def _key_digest_of(item: dict[str, Any], who: str, start: int, lines: _Lines, fail) -> str:
    """The sha256 of the API key that `item` names: from the environment variable of
    `key_env`, or `key_sha256` as given; never the key itself in the file."""
    if ("key_env" in item) == ("key_sha256" in item):
        raise fail(
            start,
            f'{who} needs one of key_env = "VAR" (the environment variable holding its API '
            'key) or key_sha256 = "<hex digest>"; never the key.',
        )
    if "key_env" in item:
        secret = os.environ.get(str(item["key_env"]))
        if not secret:
            raise fail(
                lines.key("key_env", start),
                f"{who}: the environment variable {item['key_env']!r} is unset or empty; "
                "export its API key in it before starting.",
            )
        return key_digest(secret)
    digest = str(item["key_sha256"]).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise fail(
            lines.key("key_sha256", start),
            f"{who}: key_sha256 must be 64 hex digits "
            "(python -c \"import hashlib; print(hashlib.sha256(b'KEY').hexdigest())\").",
        )
    return digest


def _tenants(items: list[dict[str, Any]], lines: _Lines, fail) -> dict[str, str]:
    headers = lines.headers("tenants")
    out: dict[str, str] = {}
    for index, item in enumerate(items):
        start = headers[index] if index < len(headers) else 0
        for key in item:
            if key not in _TENANT_KEYS:
                raise fail(
                    lines.key(key, start),
                    f"[[tenants]] has no key {key!r}; it takes {sorted(_TENANT_KEYS)}.",
                )
        namespace = item.get("namespace")
        if not isinstance(namespace, str) or not namespace.strip():
            raise fail(start, 'a [[tenants]] entry needs namespace = "..." (the tenant\'s id).')
        digest = _key_digest_of(item, f"tenant {namespace!r}", start, lines, fail)
        if digest in out:
            raise fail(start, f"tenant {namespace!r} shares its key with {out[digest]!r}.")
        out[digest] = namespace
    return out


def model_spec(entry: ModelEntry, *, supports_tools: bool) -> ModelSpec:
    """The ModelSpec of a [[models]] entry (tools as the entry or the model says)."""
    from ..pool import priced_spec

    options = entry.options
    spec = priced_spec(
        entry.name,
        entry.price,
        supports_tools=bool(options.get("supports_tools", supports_tools)),
        context_window=int(options.get("context_window", 8192)),
    )
    extra = {k: options[k] for k in ("tier", "timeout_s", "max_concurrency") if k in options}
    try:
        return dataclasses.replace(spec, **extra)
    except ConfigurationError as exc:
        raise ConfigurationError(f"model {entry.name!r} (line {entry.line}): {exc}") from None
