"""Public errors. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class SLSRouterError(Exception):
    """Base class of every error sls-router raises on purpose."""


class ConfigurationError(SLSRouterError, ValueError):
    """A constructor argument or option is invalid."""


class InvalidInputError(SLSRouterError, ValueError):
    """A request, text, vector or score cannot be used as given."""


class UnknownEntryError(SLSRouterError, KeyError):
    """An entry or request id that this instance does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StateError(SLSRouterError):
    """A saved state directory is missing, corrupted or from an unknown format version."""


class StoreUnavailableError(SLSRouterError):
    """A shared store (PostgreSQL) cannot be reached when it must be (e.g. at start)."""


class DependencyError(SLSRouterError, ImportError):
    """An optional dependency or bundled model is not installed."""


class BackendError(SLSRouterError):
    """Every model that was tried failed; `attempts` lists each one."""

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])
