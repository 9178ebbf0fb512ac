"""Adaptive Cache Manager: a scoped semantic cache whose thresholds learn from verdicts."""

from .scope import request_scope, scope_key
from .semantic import CacheEntry, CacheLookup, CacheStats, SemanticCache
from .thresholds import AdaptiveThreshold, EntryVerdicts, distance_ratio

__all__ = ["AdaptiveThreshold", "CacheEntry", "CacheLookup", "CacheStats", "EntryVerdicts",
           "SemanticCache", "distance_ratio", "request_scope", "scope_key"]
