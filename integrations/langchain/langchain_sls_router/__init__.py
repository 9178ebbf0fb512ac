"""LangChain integration of sls-router: `SmartRouterLLM`, feedback callbacks, a semantic cache."""

from .backend import LangChainBackend, langchain_pool
from .cache import SLSSemanticCache
from .callbacks import SLSFeedbackHandler
from .chat_models import ROUTE_EVENT, SmartRouterLLM

__all__ = [
    "LangChainBackend",
    "ROUTE_EVENT",
    "SLSFeedbackHandler",
    "SLSSemanticCache",
    "SmartRouterLLM",
    "langchain_pool",
]
