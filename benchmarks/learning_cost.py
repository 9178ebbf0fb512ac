"""What learning the best model from nothing must cost at least, per bundled set.

For each task of a set, the model best by the router's objective in hindsight, and the
least number of tries of every other model that any router learning from nothing must
make (Lai and Robbins' bound, `sls_router/bench/learning_cost.py`). Over the whole set,
it prints the accuracy and cost of serving each task's best model in hindsight, and the
best a router that starts from nothing can expect after paying those tries. A target
past the second line asks for more than learning allows; `sls-router bench --strategies
hindsight_knn` says how much routing request by request could add at most.

    .venv/bin/python benchmarks/learning_cost.py overruling humaneval logparsing
"""

from __future__ import annotations

import argparse
from importlib.resources import files

from sls_router.bench.learning_cost import dataset_learning_cost
from sls_router.replay import load_dataset
from sls_router.routing import PRESETS, Scheduler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--preset", default="balanced", choices=list(PRESETS))
    args = parser.parse_args()
    for name in args.sets:
        dataset = load_dataset(files("sls_router") / "data" / "replay" / f"{name}.jsonl.gz")
        accuracy, cost, bounds = dataset_learning_cost(dataset, Scheduler(preset=args.preset))
        best_accuracy = sum(b.accuracy * b.requests for b in bounds) / len(dataset)
        best_cost = sum(b.cost_usd for b in bounds)
        tries = sum(sum(b.tries.values()) for b in bounds if b.informative)
        print(
            f"{name} ({len(dataset):,} requests, {len(bounds)} task(s), {args.preset}): each "
            f"task's best model in hindsight {best_accuracy:.3f} at ${best_cost:.2f}; "
            f"learning from nothing, at best {accuracy:.3f} at ${cost:.2f} "
            f"({tries:,.0f} tries of other models)"
        )
        for b in bounds:
            line = ", ".join(f"{m} {n:.0f}" for m, n in sorted(b.tries.items()))
            note = "" if b.informative else " (more than the requests: not counted)"
            print(f"  {b.best} over {b.requests:,}: tries {line or 'none'}{note}")


if __name__ == "__main__":
    main()
