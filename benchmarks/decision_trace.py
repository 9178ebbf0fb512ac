"""Record or check the router's decisions on the bundled replays, request by request.

A refactor that claims "same behaviour" must make the same decisions: the same model
(or a cache hit) for every request, at the same cost, given the same seed and order.
This replays the three bundled sets through `sls` (the hashing embedder keeps it fast
and free of model-loading noise), writes what was served where, and with `--check`
compares a new run to the stored one and names the first request that differs.

    .venv/bin/python benchmarks/decision_trace.py --write benchmarks/decision_trace.json.gz
    .venv/bin/python benchmarks/decision_trace.py --check benchmarks/decision_trace.json.gz

Floating-point details can change a path between machines (different CPUs or BLAS), so
a stored trace is compared on the machine that wrote it, before and after a change.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from importlib.resources import files

from sls_router.bench.replay_bench import PrecomputedEmbedder, run_sls
from sls_router.embeddings import get_embedder
from sls_router.replay import load_dataset

# (set, feedback, requests): labels and verifier feedback, cache and recheck paths
RUNS = [
    ("logparsing", "verifier", 6000),
    ("logparsing", "labels", 6000),
    ("overruling", "labels", None),
    ("humaneval", "labels", None),
]


def trace() -> dict[str, dict]:
    out = {}
    for name, feedback, limit in RUNS:
        dataset = load_dataset(
            files("sls_router") / "data" / "replay" / f"{name}.jsonl.gz", limit=limit
        )
        embedder = PrecomputedEmbedder(get_embedder("hashing"), [r.embed_text for r in dataset])
        result = run_sls(dataset, embedder, feedback=feedback, preset="balanced", seed=0)
        out[f"{name}/{feedback}"] = {
            "ids": [r.id for r in dataset],
            "served": result.model,
            "cost": [round(c, 12) for c in result.cost],
            "correct": result.correct,
        }
        print(
            f"{name}/{feedback}: accuracy {sum(result.correct) / len(dataset):.4f}, "
            f"cost ${sum(result.cost):.4f}, hits {sum(result.hit)}",
            file=sys.stderr,
        )
    return out


def first_difference(old: dict, new: dict) -> str | None:
    for run, before in old.items():
        after = new.get(run)
        if after is None:
            return f"{run}: missing from the new run"
        for i, (a, b) in enumerate(zip(zip(*before.values()), zip(*after.values()))):
            if a != b:
                return f"{run}: request {i} ({before['ids'][i]}) was {a[1:]}, now {b[1:]}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="PATH")
    mode.add_argument("--check", metavar="PATH")
    args = parser.parse_args()
    new = trace()
    if args.write:
        with gzip.open(args.write, "wt") as fh:
            json.dump(new, fh)
        return 0
    with gzip.open(args.check, "rt") as fh:
        old = json.load(fh)
    difference = first_difference(old, new)
    print("same decisions on every request" if difference is None else difference)
    return 0 if difference is None else 1


if __name__ == "__main__":
    sys.exit(main())
