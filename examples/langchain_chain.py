"""A LangChain log-parsing chain on sls-router: prompt | SmartRouterLLM | parser.

Offline: the pool is the 12 LLMs of the shipped log-parsing replay set, whose answers
were recorded from real models (citation in sls_router/data/replay/README.md); no API
is called and latency is modelled from tokens. Feedback is label-free: an
`SLSFeedbackHandler` checks each template against its own log line. The reference
templates are used only to score the run at the end.

    .venv/bin/python examples/langchain_chain.py [--requests 2000]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_sls_router import SLSFeedbackHandler, SmartRouterLLM

from sls_router import LogTemplateVerifier
from sls_router.bench.trace import normalise
from sls_router.replay import load_dataset

DATA = (
    Path(__file__).resolve().parents[1] / "sls_router" / "data" / "replay" / "logparsing.jsonl.gz"
)
INSTRUCTIONS = (
    "Abstract the variable parts of this log message with <*> and answer with the template only."
)


def main(requests: int = 2000) -> dict[str, float]:
    dataset = load_dataset(DATA)
    records = dataset.records[:requests]
    llm = SmartRouterLLM.from_replay(DATA, embedder="static", task="logparsing", random_state=0)
    handler = SLSFeedbackHandler(llm, verifier=LogTemplateVerifier())
    chain = (
        ChatPromptTemplate.from_messages([("system", INSTRUCTIONS), ("human", "{log}")])
        | llm
        | StrOutputParser()
    )
    answers = chain.batch(
        [{"log": r.query} for r in records], config={"callbacks": [handler], "max_concurrency": 4}
    )
    decisions = list(handler.decisions.values())
    right = sum(normalise(a) == normalise(r.reference or "") for a, r in zip(answers, records))
    figures = {
        "requests": len(records),
        "accuracy": right / len(records),
        "cost_usd": sum(d["sls_cost_usd"] for d in decisions),
        "cache_hits": sum(d["sls_cache_hit"] for d in decisions),
    }
    print(
        f"{figures['requests']} log lines: accuracy {figures['accuracy']:.3f}, "
        f"cost ${figures['cost_usd']:.4f}, {figures['cache_hits']} served from the cache"
    )
    share = Counter(d["sls_model"] for d in decisions if not d["sls_cache_hit"])
    print("model calls:", ", ".join(f"{m} {n}" for m, n in share.most_common()))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    main(parser.parse_args().requests)
