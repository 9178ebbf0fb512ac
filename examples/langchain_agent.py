"""A LangChain `create_agent` tool loop on sls-router, offline.

The pool is two scripted tool-capable chat models and one chat-only model
(`langchain_sls_router.testing`: rule-based stand-ins for provider models, priced like
a small and a large hosted model). The tools are real functions. The router sends tool
turns only to tool-capable models, never caches them, and serves a repeated plain
question from its cache.

    .venv/bin/python examples/langchain_agent.py
"""

from __future__ import annotations

import math

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langchain_sls_router import SmartRouterLLM
from langchain_sls_router.testing import ScriptedChatModel, ScriptedToolChatModel


@tool
def square_root(x: float) -> float:
    """The square root of x."""
    return math.sqrt(x)


@tool
def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


def main() -> list[dict]:
    llm = SmartRouterLLM.from_llms(
        {
            "small": ScriptedToolChatModel(tag="small"),
            "large": ScriptedToolChatModel(tag="large"),
            "chat-only": ScriptedChatModel(tag="chat-only"),
        },
        prices={"small": (0.15, 0.60), "large": (2.50, 10.00), "chat-only": (0.05, 0.10)},
        embedder="hashing",
    )
    agent = create_agent(llm, tools=[square_root, celsius_to_fahrenheit])
    rows = []
    for question in (
        "What is the square_root of 1764?",
        "Convert 21 celsius to fahrenheit",
        "What is the square_root of 1764?",
    ):
        messages = agent.invoke({"messages": [HumanMessage(question)]})["messages"]
        turns = [m for m in messages if isinstance(m, AIMessage)]
        rows.append(
            {
                "question": question,
                "answer": messages[-1].text,
                "models": [t.response_metadata["sls_model"] for t in turns],
                "cost_usd": sum(t.response_metadata["sls_cost_usd"] for t in turns),
            }
        )
        print(
            f"{question!r} -> {messages[-1].text!r}\n    models {rows[-1]['models']}, "
            f"cost ${rows[-1]['cost_usd']:.7f}"
        )
    plain = [llm.invoke("Summarise what an agent is."), llm.invoke("Summarise what an agent is.")]
    print(
        "plain question twice, cache hits:", [m.response_metadata["sls_cache_hit"] for m in plain]
    )
    return rows


if __name__ == "__main__":
    main()
