"""sls-router: a drop-in LLM router with an adaptive semantic cache.

Importing this package loads no model and touches no file: embedders, indexes and
backends are created when you build a `SmartRouter` or `SemanticCache`.
"""

from .backends import Backend, BaseBackend, CallableBackend, StreamChunk
from .cache import ContrastCheck, SemanticCache, request_scope, scope_key
from .errors import (
    BackendError,
    ConfigurationError,
    DependencyError,
    InvalidInputError,
    SLSRouterError,
    StateError,
    StoreUnavailableError,
    UnknownEntryError,
)
from .replay import ReplayBackend
from .router import SmartRouter
from .sandbox import Sandbox, SandboxLimits
from .types import Completion, Feedback, ModelSpec, Request, Response, Usage
from .verifiers import BoundedVerifier, DoctestVerifier, LogTemplateVerifier, TaskVerifier, Verifier

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "BaseBackend",
    "BoundedVerifier",
    "CallableBackend",
    "Completion",
    "ConfigurationError",
    "DependencyError",
    "DoctestVerifier",
    "Feedback",
    "InvalidInputError",
    "LogTemplateVerifier",
    "ModelSpec",
    "ReplayBackend",
    "Request",
    "Response",
    "SLSRouterError",
    "Sandbox",
    "SandboxLimits",
    "ContrastCheck",
    "SemanticCache",
    "SmartRouter",
    "StateError",
    "StoreUnavailableError",
    "StreamChunk",
    "TaskVerifier",
    "UnknownEntryError",
    "Usage",
    "Verifier",
    "request_scope",
    "scope_key",
]
