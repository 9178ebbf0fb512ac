"""LlamaIndex integration of sls-router: `SmartRouterLLM`, `SLSEmbedding` and events.

Importing loads no model and calls nothing; everything happens when you build objects.
"""

from .backend import LlamaIndexBackend, llm_pool
from .base import SmartRouterLLM
from .embedding import SLSEmbedding
from .events import SLSCacheHitEvent, SLSFeedbackEvent, SLSFeedbackEventHandler, SLSRouteEvent

__all__ = [
    "LlamaIndexBackend",
    "SLSCacheHitEvent",
    "SLSEmbedding",
    "SLSFeedbackEvent",
    "SLSFeedbackEventHandler",
    "SLSRouteEvent",
    "SmartRouterLLM",
    "llm_pool",
]
