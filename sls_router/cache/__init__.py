"""Adaptive Cache Manager: a scoped semantic cache whose thresholds learn from verdicts."""

from .contrast import Contrast, ContrastCheck
from .entries import CacheEntry, EntryStore, LocalEntries
from .lessons import Lessons, LocalLessons
from .scope import request_scope, scope_key
from .semantic import CacheLookup, CacheStats, SemanticCache, default_cache
from .thresholds import AdaptiveThreshold, EntryVerdicts, distance_ratio

__all__ = [
    "AdaptiveThreshold",
    "CacheEntry",
    "CacheLookup",
    "CacheStats",
    "Contrast",
    "ContrastCheck",
    "EntryStore",
    "EntryVerdicts",
    "Lessons",
    "LocalEntries",
    "LocalLessons",
    "SemanticCache",
    "default_cache",
    "distance_ratio",
    "request_scope",
    "scope_key",
]
