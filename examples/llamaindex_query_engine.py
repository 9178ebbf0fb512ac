"""A LlamaIndex query engine behind sls-router, fully offline.

`Settings.llm = SmartRouterLLM...` and `Settings.embed_model = SLSEmbedding(...)` are
the only two lines a LlamaIndex user adds: every query engine then routes its LLM
calls among a pool of models and answers repeated questions from the semantic cache.

What is real and what is scripted, honestly:
* the embeddings are real: the bundled all-MiniLM-L6-v2 by default (no download),
  or `--embedder hashing` (model-free, instant) as the tests use;
* the two "models" are scripted stand-ins, `ExtractiveLLM` below: deterministic
  LlamaIndex `CustomLLM`s that answer with the sentence of the retrieved context
  sharing most words with the query. No real LLM is called, their prices are
  illustrative, and they report no token usage, so the adapter estimates tokens
  (characters / 4). Swap in real LLMs (`OpenAI(...)`, `Ollama(...)`) in `build_llm`.

Run: .venv/bin/python examples/llamaindex_query_engine.py [--embedder hashing]
Prints, per query, the model that answered, whether the cache served it, and the cost.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.llms.sls_router import SLSEmbedding, SLSRouteEvent, SmartRouterLLM

DOCUMENTS = [
    "Mercury is the smallest planet of the Solar System and the closest to the Sun. "
    "A year on Mercury lasts 88 Earth days.",
    "Venus is the hottest planet, with a surface temperature of about 465 degrees Celsius, "
    "because its thick carbon dioxide atmosphere traps heat.",
    "Mars has two small moons, Phobos and Deimos. Olympus Mons on Mars is the tallest "
    "volcano known in the Solar System.",
    "Jupiter is the largest planet. Its Great Red Spot is a storm larger than Earth that "
    "has lasted for centuries.",
    "Saturn's rings are made mostly of ice particles with some rock and dust.",
]

QUERIES = [
    "Which planet is the hottest, and why?",
    "How many moons does Mars have?",
    "What are Saturn's rings made of?",
    "Which planet is the hottest, and why?",  # asked again: served from the cache
]


_STOPWORDS = {"the", "and", "are", "how", "why", "what", "which", "does", "have", "many", "made"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w{3,}", text.lower())) - _STOPWORDS


class ExtractiveLLM(CustomLLM):
    """A scripted stand-in for an LLM: quotes the best-matching context sentence."""

    label: str = "extractive"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=256, model_name=self.label)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._answer(prompt))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self._answer(prompt)

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=text, delta=text)

        return gen()

    def _answer(self, prompt: str) -> str:
        query = re.search(r"Query: (.*)", prompt)
        words = _words(query.group(1) if query else prompt)
        parts = re.split(r"-{5,}", prompt)  # the query engine fences the context with dashes
        context = parts[1] if len(parts) >= 3 else prompt.split("Query:")[0]
        sentences = re.split(r"(?<=\.)\s+", context.strip())
        best = max(sentences, key=lambda s: len(words & _words(s)))
        return f"[{self.label}] {best.strip()}"


class _RouteLog(BaseEventHandler):
    """Keeps the router's decisions (one SLSRouteEvent per answer) for the printout."""

    routes: list = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, SLSRouteEvent):
            self.routes.append(event)


def build_llm(embed: SLSEmbedding) -> SmartRouterLLM:
    """Two scripted models with illustrative prices (USD per million tokens)."""
    return SmartRouterLLM.from_llms(
        {"small": ExtractiveLLM(label="small"), "large": ExtractiveLLM(label="large")},
        prices={"small": (0.15, 0.60), "large": (2.50, 10.00)},
        embedder=embed.embedder,
        random_state=0,
    )


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "static", "hashing"])
    args = parser.parse_args(argv)

    embed = SLSEmbedding(args.embedder)
    Settings.embed_model = embed
    Settings.llm = build_llm(embed)
    log = _RouteLog(routes=[])
    root = get_dispatcher()
    root.add_event_handler(log)
    rows = []
    try:
        index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
        engine = index.as_query_engine(similarity_top_k=2)
        for query in QUERIES:
            answer = str(engine.query(query))
            route = log.routes[-1]
            rows.append(
                {
                    "query": query,
                    "answer": answer,
                    "model": route.model,
                    "cache_hit": route.cache_hit,
                    "cost_usd": route.cost_usd,
                }
            )
            print(
                f"{query}\n  -> {answer}\n  model={route.model} cache_hit={route.cache_hit} "
                f"cost=${route.cost_usd:.8f}"
            )
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not log]
        Settings.llm.close()
    total = sum(r["cost_usd"] for r in rows)
    hits = sum(r["cache_hit"] for r in rows)
    print(f"\n{len(rows)} queries, {hits} served from the cache, total cost ${total:.8f}")
    return rows


if __name__ == "__main__":
    main()
