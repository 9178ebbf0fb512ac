"""SLSEmbedding: sls-router's offline embedders as a LlamaIndex embedding model.

With it a VectorStoreIndex needs no embedding provider and no network: "minilm" is
the bundled all-MiniLM-L6-v2, "static" its distilled lookup table, "hashing" a
model-free n-gram hasher for tests and log-like text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from sls_router.embeddings import Embedder, get_embedder


class SLSEmbedding(BaseEmbedding):
    """Embeds with an sls-router embedder, by name or as a ready object.

    ``SLSEmbedding("minilm")`` loads the model when built (not on the first query).
    Pass ``.embedder`` to the router (``embedder=emb.embedder``) to share one instance.
    """

    _embedder: Any = PrivateAttr()

    def __init__(
        self, embedder: str | Embedder = "minilm", *, embed_batch_size: int = 64, **kwargs: Any
    ) -> None:
        resolved = get_embedder(embedder)
        super().__init__(
            model_name=f"sls-router/{resolved.name}", embed_batch_size=embed_batch_size, **kwargs
        )
        self._embedder = resolved

    @classmethod
    def class_name(cls) -> str:
        return "SLSEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(texts)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await asyncio.to_thread(self._encode, [query]))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await asyncio.to_thread(self._encode, [text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._encode, texts)

    def _encode(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.encode(list(texts)).tolist()
