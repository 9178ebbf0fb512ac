"""The LangChain examples run offline and do what their docstrings say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chain_example_routes_and_feeds_back_every_request():
    figures = _load("langchain_chain").main(requests=300)
    assert figures["requests"] == 300
    assert 0.0 < figures["accuracy"] <= 1.0 and figures["cost_usd"] > 0
    assert 0 < figures["cache_hits"] < 300


def test_agent_example_uses_the_tools_on_tool_capable_models():
    rows = _load("langchain_agent").main()
    assert [r["answer"].split()[-1] for r in rows] == ["42.0", "69.8", "42.0"]
    assert all(set(r["models"]) <= {"small", "large"} for r in rows)
