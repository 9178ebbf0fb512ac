"""From a checked pool.toml to the router's pool: (ModelSpec, Backend) pairs.

Prices go through the engine's rules (`sls_router.pool`); a LangChain chat model is
wrapped by the LangChain adapter's own backend, never a second copy of it here.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..backends import Backend
from ..errors import ConfigurationError, DependencyError, SLSRouterError
from ..replay import load_dataset, replay_pool
from ..types import ModelSpec
from .config import ModelEntry, ReplayEntry, ServeConfig, model_spec
from .openai_backend import OpenAIBackend


def build_pool(config: ServeConfig) -> list[tuple[ModelSpec, Backend]]:
    """Every model of `config`, reachable; raises ConfigurationError naming the line."""
    pool: list[tuple[ModelSpec, Backend]] = []
    for replay in config.replays:
        pool.extend(_replay_models(replay, config))
    for entry in config.models:
        pool.append(_openai(entry, config) if entry.kind == "openai" else _langchain(entry, config))
    names = [spec.name for spec, _ in pool]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(
            f"{config.path}: model {twice[0]!r} is named twice (in [[models]] or a replay "
            "file); give each model a unique name or list only some replay models."
        )
    if config.reference_model is not None and config.reference_model not in names:
        raise ConfigurationError(
            f"{config.where('reference_model')}: reference_model = "
            f"{config.reference_model!r} is not in the pool ({sorted(names)}); name one of them."
        )
    return pool


def _replay_models(entry: ReplayEntry, config: ServeConfig) -> list[tuple[ModelSpec, Backend]]:
    try:
        dataset = load_dataset(entry.path)
    except SLSRouterError as exc:
        raise ConfigurationError(f"{config.path} line {entry.line}: {exc}") from None
    names = list(entry.models or dataset.model_names)
    unknown = [n for n in names if n not in dataset.models]
    if unknown:
        raise ConfigurationError(
            f"{config.path} line {entry.line}: {entry.path.name} has no model {unknown[0]!r}; "
            f"use some of {dataset.model_names}."
        )
    recorded = {
        spec.name: (spec, backend) for spec, backend in replay_pool(dataset, sleep=entry.sleep)
    }
    return [recorded[name] for name in names]


def _openai(entry: ModelEntry, config: ServeConfig) -> tuple[ModelSpec, Backend]:
    options = entry.options
    key = None
    if "api_key_env" in options:
        key = os.environ.get(options["api_key_env"])
        if not key:
            raise ConfigurationError(
                f"{config.path} line {entry.line}: model {entry.name!r} reads its API key "
                f"from ${options['api_key_env']}, which is unset or empty; export it before "
                "starting (or drop api_key_env for a server that needs no key)."
            )
    spec = model_spec(entry, supports_tools=False)
    backend = OpenAIBackend(
        options["base_url"], options.get("model", entry.name), key, timeout_s=spec.timeout_s
    )
    return spec, backend


def _langchain(entry: ModelEntry, config: ServeConfig) -> tuple[ModelSpec, Backend]:
    where = f"{config.path} line {entry.line}: model {entry.name!r}"
    try:
        from langchain_sls_router.backend import langchain_pool
    except ImportError as exc:
        raise DependencyError(
            f"{where} is a LangChain chat model: pip install langchain-sls-router "
            "(integrations/langchain) next to sls-router[serve]."
        ) from exc
    model_class = _import_class(options_class := entry.options["class"], where)
    try:
        llm: Any = model_class(**entry.options.get("kwargs", {}))
    except Exception as exc:  # noqa: BLE001 - any constructor error is a config error
        raise ConfigurationError(
            f"{where}: {options_class}(**kwargs) failed ({type(exc).__name__}: {exc}); fix kwargs."
        ) from None
    [(spec, backend)] = langchain_pool({entry.name: llm}, {entry.name: entry.price})
    declared = model_spec(entry, supports_tools=spec.supports_tools)
    if declared.supports_tools and not spec.supports_tools:
        raise ConfigurationError(
            f"{where}: supports_tools = true, but {options_class} cannot bind tools; drop it."
        )
    return declared, backend


def _import_class(path: str, where: str) -> type:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{where}: cannot import {path} ({exc}); install its package or fix the "
            "path ('package.module:Class')."
        ) from None
    if not isinstance(value, type):
        raise ConfigurationError(f"{where}: {path} is not a class; name the chat-model class.")
    return value
