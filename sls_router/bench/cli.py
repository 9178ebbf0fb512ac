"""The `sls-router` command: thin argument parsing over the lab's benches and converters,
and `serve`, the OpenAI-compatible server (the serve extra)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import SLSRouterError


def _cache_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..embeddings import get_embedder
    from .cache_bench import fixed_threshold, load_pairs, run_cache_bench

    if args.contrast:
        return _contrast_bench(args)
    if not args.pairs:
        raise SLSRouterError("pass --pairs FILE (paraphrase pairs) or --contrast FILE.")
    pairs = load_pairs(args.pairs)
    embedder = get_embedder(args.embedder)
    mode = "online feedback" if args.feedback else "no feedback"
    start = time.perf_counter()
    vectors = (
        embedder.encode([p["origin"] for p in pairs]),
        embedder.encode([p["similar"] for p in pairs]),
    )
    embed_s = round(time.perf_counter() - start, 3)
    runs = {
        f"sls adaptive ({mode})": run_cache_bench(
            pairs, embedder, feedback=args.feedback, vectors=vectors, contrast=not args.no_contrast
        )
    }
    if args.static:
        runs[f"fixed cosine >= {args.threshold}"] = run_cache_bench(
            pairs, embedder, threshold=fixed_threshold(args.threshold), vectors=vectors
        )
    for result in runs.values():
        result["embed_s"] = embed_s
    table = Table(title=f"cache-bench: {args.pairs} ({len(pairs)} pairs, {embedder.name})")
    for col in (
        "rule",
        "positive",
        "negative",
        "miss",
        "hit rate",
        "wrong-hit rate",
        "lookup p50 ms",
        "lookup p99 ms",
    ):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for name, r in runs.items():
        table.add_row(
            name,
            str(r["positive"]),
            str(r["negative"]),
            str(r["miss"]),
            f"{r['hit_rate']:.3f}",
            f"{r['wrong_hit_rate']:.3f}",
            f"{r['lookup_p50_ms']:.3f}",
            f"{r['lookup_p99_ms']:.3f}",
        )
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


def _contrast_bench(args: argparse.Namespace) -> int:
    from .contrast_bench import load_contrast_pairs, run_contrast_bench

    pairs = load_contrast_pairs(args.contrast)
    result = run_contrast_bench(pairs, args.embedder, contrast=not args.no_contrast)
    check = "off" if args.no_contrast else "on"
    print(f"contrast bench: {args.contrast}, {args.embedder}, cold, contrast check {check}")
    print(
        f"  opposites served: {result['opposites_served']} / {result['contrast_pairs']} "
        f"({result['opposites_served_rate']:.1%})  by kind: {result['opposites_served_by_kind']}"
    )
    print(
        f"  paraphrases served right: {result['paraphrases_served_right']} / "
        f"{result['paraphrase_pairs']} ({result['paraphrases_served_right_rate']:.1%}); "
        f"other wrong hits: {result['other_wrong_hits']}"
    )
    print(f"  refusals by reason: {result['refusals']}")
    print(
        f"  lookup p50 on would-be hits: {result['hit_lookup_p50_ms']:.3f} ms with the check, "
        f"{result['hit_lookup_p50_ms_without_check']:.3f} ms without "
        f"(+{result['check_adds_p50_ms']:.3f} ms)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


_OVERHEAD_KEYS = (
    "entries",
    "embedder",
    "backend",
    "miss_p50_ms",
    "miss_p99_ms",
    "hit_p50_ms",
    "hit_p99_ms",
    "torch_embed_p50_ms",
    "miss_over_torch_embed",
)


def _overhead(args: argparse.Namespace) -> int:
    from .overhead import compare_overhead

    names = [name for name in args.embedder.split(",") if name.strip()]
    results = compare_overhead(
        names, entries=args.entries, models=args.models, decisions=args.decisions
    )
    for name, result in results.items():
        print(
            f"{result['entries']:,} entries, {result['models']} models, {name} "
            f"({result['backend']}): miss path p50 {result['miss_p50_ms']:.3f} ms / "
            f"p99 {result['miss_p99_ms']:.3f} ms, hit path p50 {result['hit_p50_ms']:.3f} ms / "
            f"p99 {result['hit_p99_ms']:.3f} ms; one torch MiniLM embedding p50 "
            f"{result['torch_embed_p50_ms']:.3f} ms (miss p50 = "
            f"{result['miss_over_torch_embed']:.0%} of it)"
        )
    if args.json:
        figures = {name: {k: r[k] for k in _OVERHEAD_KEYS} for name, r in results.items()}
        # one embedder: its figures at the top, as before; several: side by side by name
        out = next(iter(figures.values())) if len(figures) == 1 else {"embedders": figures}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ..serve import open_server, run

    server = open_server(args.config, args.state)  # a bad config stops here, before binding
    run(server, host=args.host, port=args.port)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert

    summary = convert(args.kind, args.src, args.out, limit_per_source=args.limit)
    print(json.dumps(summary, indent=1))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..replay import load_dataset
    from .replay_bench import run_bench
    from .simulated_users import parse_reask_rates

    models = _listed(args.models)
    dataset = load_dataset(args.data, limit=args.limit).subset(models, _listed(args.tasks))
    train = load_dataset(args.train).subset(models) if args.train else None
    strategies = _listed(args.strategies)
    result, traces = run_bench(
        dataset,
        feedback=args.feedback,
        embedder=args.embedder,
        preset=args.preset,
        confirm_precision=args.confirm_precision,
        judge_accuracy=args.judge_accuracy,
        reask=None if args.reask_rate is None else parse_reask_rates(args.reask_rate),
        strategies=strategies,
        seed=args.seed,
        seeds=args.seeds,
        train=train,
        train_split=args.train_split,
        default_model=args.default_model,
    )
    print_bench(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    if args.report:
        from .report import write_report

        print(f"report: {write_report(result, traces, args.report)}")
    return 0


def _listed(value: str | None) -> list[str] | None:
    """A comma-separated option as its names; None when the option was not given."""
    return value.split(",") if value else None


def _bench_title(result: dict) -> str:
    seeds = result.get("seeds", 1)
    over = f", mean of {seeds} seeds (worst seed beside)" if seeds > 1 else ""
    trained = f" (after learning {result['n_train']:,})" if result.get("n_train") else ""
    judged = f" and a judge ({result['judge']})" if result.get("judge") else ""
    judged += f" and {result['reask']}" if result.get("reask") else ""
    judged += f", sls keeping {result['default_model']}" if result.get("default_model") else ""
    return (
        f"{result['dataset']}: {result['n']:,} requests{trained}, {result['feedback']} "
        f"feedback{judged}, {result['embedder']} (embedding {result['embed_s']} s){over}"
    )


def print_bench(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_bench_title(result))
    for col in (
        "strategy",
        "accuracy (worst)",
        "cost USD (worst)",
        "LLM time s",
        "cache hits",
        "wrong hits",
        "explored",
        "wall s",
        "dominated by",
    ):
        table.add_column(col, justify="left" if col in ("strategy", "dominated by") else "right")
    for name, s in sorted(result["strategies"].items(), key=lambda kv: -kv[1]["accuracy"]):
        table.add_row(
            name,
            f"{s['accuracy']:.3f} ({s['accuracy_worst']:.3f})",
            f"{s['cost_usd']:.4f} ({s['cost_usd_worst']:.4f})",
            f"{s['llm_time_s']:.0f}",
            f"{s['cache_hit_rate']:.1%}",
            f"{s['cache_wrong_hit_rate']:.1%}",
            f"{s['explored_cost_share']:.1%}",
            f"{s['wall_s']:.1f}",
            ", ".join(d.removeprefix("single:") for d in s["dominated_by"]),
        )
    console = Console(width=160)
    console.print(table)
    for name, s in result["strategies"].items():
        for source, v in s.get("verdicts", {}).items():
            console.print(
                f"{name}: {v['n']:,.0f} {source} verdicts on served answers per run, "
                f"{v['right']:.1%} of them right (the router is not told which)"
            )


def _stress(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .stress import run_stress, stress_goals

    size = "full" if args.full else "quick" if args.quick else "default"
    result = run_stress(
        size, seed=args.seed, progress=lambda message: print(message, file=sys.stderr, flush=True)
    )
    goals = result["goals"] = stress_goals(result)
    table = Table(title=f"stress ({size}, seed {args.seed}): {result['wall_s']} s")
    for col in ("figure", "value", "goal", "met"):
        table.add_column(col, justify="left" if col in ("figure", "goal") else "right")
    for name, (value, goal, met) in goals.items():
        table.add_row(name, str(value), goal, "yes" if met else "NO")
    table.add_row(
        "rss_mb start -> end",
        f"{result['rss_mb_start']} -> {result['rss_mb_end']}",
        f"{result['rss_requests']:,} requests, cache {result['memory']['rss_cache_capacity']:,}",
        "",
    )
    for name, seconds in result["durations_s"].items():
        table.add_row(f"time: {name}", f"{seconds} s", "", "")
    Console(width=140).print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"wrote {args.json}")
    return 0 if all(met for _, _, met in goals.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sls-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "cache-bench", help="GPTCache's hit / wrong-hit protocol on paraphrase pairs"
    )
    p.add_argument("--pairs", help="JSON list of {origin, similar}")
    p.add_argument(
        "--contrast",
        help="JSON Lines of {a, b, same}: opposites served and paraphrases served right, cold",
    )
    p.add_argument("--no-contrast", action="store_true", help="switch the contrast check off")
    p.add_argument(
        "--embedder",
        default="minilm",
        help="minilm (default), onnx, onnx-int8, static or hashing",
    )
    p.add_argument("--feedback", action="store_true", help="online run with verdicts fed back")
    p.add_argument(
        "--static",
        action="store_true",
        help="also run a fixed cosine threshold (no margin, no learning)",
    )
    p.add_argument("--threshold", type=float, default=0.6, help="cosine for --static")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=_cache_bench)

    p = sub.add_parser("overhead", help="time the router's decision (no model time)")
    p.add_argument("--entries", type=int, default=100_000, help="synthetic cache entries")
    p.add_argument(
        "--embedder",
        default="static",
        help="static (default), minilm, onnx, onnx-int8 or hashing; a comma-separated "
        "list (e.g. minilm,onnx,onnx-int8) runs each in turn and reports them side by side",
    )
    p.add_argument("--models", type=int, default=8, help="models in the pool")
    p.add_argument("--decisions", type=int, default=1000, help="timed decisions per path")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=_overhead)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server with metrics and a dashboard")
    p.add_argument("--config", required=True, help="pool.toml (see examples/serve/pool.toml)")
    p.add_argument(
        "--state",
        help="where the learned state lives: a directory (saved on shutdown) or a "
        "postgresql:// URL (shared with replicas); default: in memory only",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)

    p = sub.add_parser("convert", help="turn recorded LLM results into a replay file")
    p.add_argument("kind", choices=("logparsing", "humaneval", "overruling"))
    p.add_argument("src", help="source folder (or overruling.csv.gz)")
    p.add_argument("out", help="OUT.jsonl[.gz]; the .models.json sidecar is written beside it")
    p.add_argument("--limit", type=int, help="first N lines per system / problems / rows")
    p.set_defaults(func=_convert)

    p = sub.add_parser("bench", help="replay recorded answers through sls-router and baselines")
    p.add_argument("--data", required=True, help="replay file (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--feedback", default="labels", choices=("labels", "verifier", "label-free", "none")
    )
    p.add_argument(
        "--embedder",
        default="minilm",
        help="minilm (default), onnx, onnx-int8, static or hashing",
    )
    p.add_argument("--preset", default="balanced", choices=("quality", "balanced", "cost"))
    p.add_argument(
        "--confirm-precision",
        type=float,
        default=None,
        help="the router's confirm_precision: label-free evidence confirms a cached "
        "answer only once other models' agreement makes it this likely right",
    )
    p.add_argument(
        "--judge-accuracy",
        type=float,
        default=None,
        help="add an LLM judge simulated from the labels, right with this probability "
        "and priced like the pool's dearest model (printed as simulated)",
    )
    p.add_argument(
        "--reask-rate",
        metavar="P[,Q]",
        help="simulate users who ask the same again in the thread after a wrong answer "
        "with probability P, after a right one with Q (default 0.05); printed as simulated",
    )
    p.add_argument(
        "--default-model",
        metavar="MODEL",
        help="the router's default_model: the model the team runs today, which sls "
        "keeps until evidence beats it",
    )
    p.add_argument("--strategies", help="comma-separated subset (default: all)")
    p.add_argument(
        "--models",
        metavar="A,B,...",
        help="replay with this pool only (default: every model of the file)",
    )
    p.add_argument(
        "--tasks",
        metavar="T,U,...",
        help="replay only these tasks' requests (default: all)",
    )
    p.add_argument("--limit", type=int, help="replay only the first N requests")
    p.add_argument(
        "--seed", type=int, default=0, help="random state of seed 0 (seed s: --seed + s)"
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="run K orders (seed 0: file order; seed s: shuffled by s, random state "
        "--seed + s) and report the mean and the worst seed",
    )
    p.add_argument(
        "--train",
        metavar="FILE",
        help="replay file of recorded outcomes (same models) that sls learns before "
        "serving; none of its ids may be in --data",
    )
    p.add_argument(
        "--train-split",
        type=float,
        metavar="F",
        help="learn the first fraction F of --data (file order, before any shuffle) "
        "and score only the rest",
    )
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--report", help="write report.md and PNGs into this directory")
    p.set_defaults(func=_bench)

    p = sub.add_parser("stress", help="faults, load, kill -9, tenants, bad input, memory")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument(
        "--full",
        action="store_true",
        help="the issue's full size (8x1,000 threads, 100x1,000 tasks, RSS over "
        "100,000 requests, 50 kills): several minutes",
    )
    p.add_argument("--quick", action="store_true", help="a small size for tests (5 kills)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_stress)

    p = sub.add_parser("shared-store", help="PostgreSQL store vs local: lookups and 4 replicas")
    p.add_argument(
        "--url",
        help="postgresql:// URL of an empty database (default: a temporary "
        "server from the pgserver package)",
    )
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--requests", type=int, default=500, help="requests per process")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=_shared_store)
    return parser


def _shared_store(args: argparse.Namespace) -> int:
    import tempfile

    import psycopg

    from .shared_store import compare_replicas, lookup_figures

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.url is None:
            try:
                import pgserver
            except ImportError:
                print(
                    "sls-router: error: pass --url, or pip install pgserver for a temporary server",
                    file=sys.stderr,
                )
                return 2
            server = pgserver.get_server(tmp, cleanup_mode="stop")
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE sls_lookups")
                conn.execute("CREATE DATABASE sls_replicas")

        def database_url(name: str) -> str:
            if args.url:
                return args.url
            assert server is not None  # started above when no --url was given
            return server.get_uri(name)

        try:
            lookup_url = database_url("sls_lookups")
            figures = {"lookups": lookup_figures(lookup_url, entries=args.entries)}
            if args.url is not None:  # the replica runs need empty tables
                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(
                        "TRUNCATE sls_cache_entries, sls_feedback, sls_outcomes, "
                        "sls_cache_verdicts, sls_wrong_answers, sls_update_log"
                    )
            figures["replicas"] = compare_replicas(
                database_url("sls_replicas"), args.processes, args.requests
            )
        finally:
            if server is not None:
                server.cleanup()
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SLSRouterError as exc:
        print(f"sls-router: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
