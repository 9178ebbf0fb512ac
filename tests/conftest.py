"""Shared test helpers: a deterministic embedder whose geometry the test controls."""

from __future__ import annotations

import numpy as np
import pytest


class TopicEmbedder:
    """Texts "topic:variant" map to a unit vector near the topic's own direction.

    Same topic -> cosine ~0.97 (paraphrases); different topics -> cosine ~0 (unrelated).
    `spread` moves variants further apart. Deterministic across runs."""

    name = "topic-test"

    def __init__(self, dim: int = 64, spread: float = 0.25) -> None:
        self.dim = dim
        self.spread = spread

    def _unit(self, key: str) -> np.ndarray:
        rng = np.random.default_rng(abs(_stable(key)))
        v = rng.standard_normal(self.dim)
        return v / np.linalg.norm(v)

    def encode(self, texts):
        out = []
        for text in texts:
            topic, _, variant = text.partition(":")
            v = self._unit("topic/" + topic)
            if variant:
                v = v + self.spread * self._unit("variant/" + text)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def _stable(key: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


@pytest.fixture
def topic_embedder() -> TopicEmbedder:
    return TopicEmbedder()
