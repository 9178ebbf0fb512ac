"""LangChain's own standard test suites, run against SmartRouterLLM.

The pool is scripted chat models (see langchain_sls_router/testing.py): the suites check that the
adapter behaves like a LangChain chat model, not what a real model understands.
"""

from __future__ import annotations

from typing import Any

from langchain_sls_router import SmartRouterLLM
from langchain_sls_router.testing import ScriptedChatModel, ScriptedToolChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from sls_router import SmartRouter


def _router() -> SmartRouter:
    from langchain_sls_router import langchain_pool

    pool = langchain_pool(
        {
            "small": ScriptedToolChatModel(tag="small"),
            "large": ScriptedToolChatModel(tag="large"),
            "chat-only": ScriptedChatModel(tag="chat-only"),
        },
        prices={"small": (0.15, 0.6), "large": (2.5, 10.0), "chat-only": (0.05, 0.1)},
    )
    return SmartRouter(pool, embedder="hashing", background_updates=False, random_state=0)


class _SmartRouterLLMConfig:
    """What both suites need: the class, a fresh router per model, tool choice."""

    @property
    def chat_model_class(self) -> type[SmartRouterLLM]:
        return SmartRouterLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": _router()}

    @property
    def has_tool_choice(self) -> bool:
        return True


class TestSmartRouterLLMUnit(_SmartRouterLLMConfig, ChatModelUnitTests):
    pass


class TestSmartRouterLLMIntegration(_SmartRouterLLMConfig, ChatModelIntegrationTests):
    pass
