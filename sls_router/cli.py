"""The `sls-router` command: thin argument parsing over the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import SLSRouterError


def _cache_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .bench.cache_bench import fixed_threshold, load_pairs, run_cache_bench
    from .embeddings import get_embedder

    pairs = load_pairs(args.pairs)
    embedder = get_embedder(args.embedder)
    mode = "online feedback" if args.feedback else "no feedback"
    start = time.perf_counter()
    vectors = (embedder.encode([p["origin"] for p in pairs]),
               embedder.encode([p["similar"] for p in pairs]))
    embed_s = round(time.perf_counter() - start, 3)
    runs = {f"sls adaptive ({mode})": run_cache_bench(pairs, embedder, feedback=args.feedback,
                                                       vectors=vectors)}
    if args.static:
        runs[f"fixed cosine >= {args.threshold}"] = run_cache_bench(
            pairs, embedder, threshold=fixed_threshold(args.threshold), vectors=vectors)
    for result in runs.values():
        result["embed_s"] = embed_s
    table = Table(title=f"cache-bench: {args.pairs} ({len(pairs)} pairs, {embedder.name})")
    for col in ("rule", "positive", "negative", "miss", "hit rate", "wrong-hit rate",
                "lookup p50 ms", "lookup p99 ms"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for name, r in runs.items():
        table.add_row(name, str(r["positive"]), str(r["negative"]), str(r["miss"]),
                      f"{r['hit_rate']:.3f}", f"{r['wrong_hit_rate']:.3f}",
                      f"{r['lookup_p50_ms']:.3f}", f"{r['lookup_p99_ms']:.3f}")
    Console(width=140).print(table)
    main_run = next(iter(runs.values()))
    print(f"embedding {len(pairs) * 2} texts took {main_run['embed_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(main_run, indent=2))
        if args.static:
            static_path = Path(args.json).with_suffix(".static.json")
            static_path.write_text(json.dumps(list(runs.values())[1], indent=2))
        print(f"wrote {args.json}")
    return 0


def _overhead(args: argparse.Namespace) -> int:
    from .bench.overhead import measure_overhead

    result = measure_overhead(entries=args.entries, embedder=args.embedder, models=args.models,
                              decisions=args.decisions)
    print(f"{result['entries']:,} entries, {result['models']} models, {result['embedder']}: "
          f"miss path p50 {result['miss_p50_ms']:.3f} ms / p99 {result['miss_p99_ms']:.3f} ms, "
          f"hit path p50 {result['hit_p50_ms']:.3f} ms / p99 {result['hit_p99_ms']:.3f} ms")
    if args.json:
        keys = ("entries", "embedder", "miss_p50_ms", "miss_p99_ms", "hit_p50_ms", "hit_p99_ms")
        Path(args.json).write_text(json.dumps({k: result[k] for k in keys}, indent=2))
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sls-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cache-bench", help="GPTCache's hit / wrong-hit protocol on paraphrase pairs")
    p.add_argument("--pairs", required=True, help="JSON list of {origin, similar}")
    p.add_argument("--embedder", default="minilm", help="minilm (default), static or hashing")
    p.add_argument("--feedback", action="store_true", help="online run with verdicts fed back")
    p.add_argument("--static", action="store_true",
                   help="also run a fixed cosine threshold (no margin, no learning)")
    p.add_argument("--threshold", type=float, default=0.6, help="cosine for --static")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=_cache_bench)

    p = sub.add_parser("overhead", help="time the router's decision (no model time)")
    p.add_argument("--entries", type=int, default=100_000, help="synthetic cache entries")
    p.add_argument("--embedder", default="static", help="static (default), minilm or hashing")
    p.add_argument("--models", type=int, default=8, help="models in the pool")
    p.add_argument("--decisions", type=int, default=1000, help="timed decisions per path")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=_overhead)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SLSRouterError as exc:
        print(f"sls-router: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
