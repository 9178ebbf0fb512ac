"""sls-router: a drop-in LLM router with an adaptive semantic cache.

Importing this package loads no model and touches no file: embedders and indexes
are created when you build a `SemanticCache`.
"""

from .cache import SemanticCache, scope_key
from .errors import (BackendError, ConfigurationError, DependencyError, InvalidInputError,
                     SLSRouterError, StateError, UnknownEntryError)

__version__ = "0.1.0"

__all__ = [
    "BackendError", "ConfigurationError", "DependencyError", "InvalidInputError",
    "SLSRouterError", "SemanticCache", "StateError", "UnknownEntryError", "scope_key",
]
