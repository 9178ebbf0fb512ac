"""A Markdown report with matplotlib figures for one `sls-router bench` run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .trace import Trace

_HIGHLIGHT = ("sls", "oracle", "best_single", "cascade", "static_knn", "sls_no_cache")


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the (cost, accuracy) points no other point beats on both, by cost."""
    front, best = [], -1.0
    for name, (_, acc) in sorted(points.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
        if acc > best:
            front.append(name)
            best = acc
    return front


def _order_note(result: dict) -> str:
    """How the requests were replayed: which order(s), after learning what."""
    seeds = result.get("seeds", 1)
    order = "in file order" if seeds == 1 else f"in {seeds} orders (seeds)"
    trained = (
        f" after learning {result['n_train']:,} recorded requests that are not scored"
        if result.get("n_train")
        else ""
    )
    note = f"{result['n']:,} requests replayed {order}{trained}"
    if seeds == 1:
        return note + "."
    return (
        f"{note}: seed 0 in file order, the others shuffled. Every figure is the mean "
        "over seeds, with the worst seed's in brackets."
    )


def _cost_accuracy_plot(result: dict, front: list[str], path: Path, plt) -> None:
    """Each strategy's mean as a big point, each of its seeds as a small one."""
    strategies = result["strategies"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, s in strategies.items():
        main = name in _HIGHLIGHT or name.startswith("sls")
        color = "tab:red" if name.startswith("sls") else "tab:blue"
        seeds = s.get("per_seed", [])
        if len(seeds) > 1:
            ax.scatter(
                [p["cost_usd"] for p in seeds],
                [p["accuracy"] for p in seeds],
                s=8,
                alpha=0.45,
                zorder=2,
                color=color,
            )
        ax.scatter(s["cost_usd"], s["accuracy"], s=60 if main else 25, zorder=3, color=color)
        ax.annotate(
            name,
            (s["cost_usd"], s["accuracy"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    fx = [strategies[n]["cost_usd"] for n in front]
    fy = [strategies[n]["accuracy"] for n in front]
    ax.step(fx, fy, where="post", color="grey", linestyle="--", label="Pareto frontier (means)")
    costs = [s["cost_usd"] for s in strategies.values() if s["cost_usd"] > 0]
    ax.set_xscale("symlog", linthresh=max(min(costs, default=1e-6), 1e-6))
    ax.set_xlabel("total cost (USD, log scale)")
    ax.set_ylabel("accuracy")
    spread = f", {result.get('seeds', 1)} seeds: small points" if result.get("seeds", 1) > 1 else ""
    ax.set_title(f"{result['dataset']}: cost vs accuracy ({result['feedback']} feedback{spread})")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table_lines(strategies: dict, front: list[str]) -> list[str]:
    lines = [
        "| strategy | accuracy (worst) | cost USD (worst) | LLM time (s) | cache hits "
        "| wrong hits | explored (of cost) | wall (s) | dominated by |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sorted(strategies.items(), key=lambda kv: -kv[1]["accuracy"]):
        star = " *" if name in front else ""
        lines.append(
            f"| {name}{star} | {s['accuracy']:.3f} ({s['accuracy_worst']:.3f}) | "
            f"{s['cost_usd']:.4f} ({s['cost_usd_worst']:.4f}) | "
            f"{s['llm_time_s']:.0f} | {s['cache_hit_rate']:.1%} | "
            f"{s['cache_wrong_hit_rate']:.1%} | {s['explored_cost_share']:.1%} | "
            f"{s['wall_s']:.1f} | "
            f"{', '.join(s['dominated_by'])} |"
        )
    return lines


def write_report(result: dict, traces: dict[str, Trace], directory: str | Path) -> Path:
    """Writes report.md and three PNGs into `directory`; returns the report's path.
    The curves and shares are seed 0's; the table and the cost/accuracy plot cover all."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    strategies = result["strategies"]
    points = {n: (s["cost_usd"], s["accuracy"]) for n, s in strategies.items()}
    front = pareto_front(points)
    _cost_accuracy_plot(result, front, directory / "cost_accuracy.png", plt)

    window = max(50, result["n"] // 40)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for name in [n for n in _HIGHLIGHT if n in traces]:
        trace = traces[name]
        acc = np.convolve(np.asarray(trace.correct, float), np.ones(window) / window, "valid")
        ax1.plot(np.arange(len(acc)) + window, acc, label=name, lw=1.2)
        ax2.plot(np.cumsum(trace.cost), label=name, lw=1.2)
    ax1.set_ylabel(f"accuracy (moving mean of {window})")
    ax1.set_title("learning curve over the request stream")
    ax1.legend(fontsize=7, ncol=3)
    ax2.set_ylabel("cumulative cost (USD)")
    ax2.set_xlabel("request")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(directory / "learning_curve.png", dpi=120)
    plt.close(fig)

    main_name = "sls" if "sls" in traces else next(iter(traces))
    models = traces[main_name].model
    names = sorted(set(models), key=lambda m: (m != "cache", m))
    bins = np.array_split(np.arange(len(models)), min(40, max(1, len(models))))
    shares = np.array(
        [[sum(models[i] == m for i in b) / max(len(b), 1) for b in bins] for m in names]
    )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.stackplot([int(b[-1]) + 1 for b in bins], shares, labels=names)
    ax.set_ylim(0, 1)
    ax.set_xlabel("request")
    ax.set_ylabel("share of requests")
    ax.set_title(f"{main_name}: who answered (cache or model) over time")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(directory / "model_share.png", dpi=120)
    plt.close(fig)

    lines = [
        f"# sls-router bench: {result['dataset']}",
        "",
        f"{_order_note(result)} Feedback `{result['feedback']}`, "
        f"embedder `{result['embedder']}` (embedding took {result['embed_s']} s). "
        f"Best single model in hindsight: `{result['best_single']}`; cheapest: "
        f"`{result['cheapest']}`. Strategies on the cost/accuracy Pareto frontier of the "
        "means are marked *; *dominated by* names the single models at least as accurate "
        "and as cheap, and better on one of the two.",
        "",
        *_table_lines(strategies, front),
    ]
    lines += [
        "",
        "![cost vs accuracy](cost_accuracy.png)",
        "",
        "Learning curve and model share: seed 0 (file order).",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "![model share](model_share.png)",
        "",
        "LLM time sums each answered call's latency: recorded where the data set has it, "
        "otherwise modelled from tokens and the sidecar's throughput. `best_single` and "
        "`oracle` use hindsight and are references, not runnable strategies.",
        "",
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path
