"""Load on `sls-router serve`, on 127.0.0.1 only: C concurrent streaming clients x R
requests each over the bundled log-parsing replay, every answer waiting its modelled
latency. Each client streams its answer (OpenAI chunks, usage last), then sends
feedback on it. Checks that every request was answered and no feedback was lost (the
server's own count, and after a SIGTERM the saved state reopened), and prints p50 / p99
of the server's own overhead (its time per request minus the model time).

    .venv/bin/python benchmarks/serve_load.py                 # 200 clients x 20 requests
    .venv/bin/python benchmarks/serve_load.py --clients 20 --requests 5 --embedder hashing

Not a timed test: figures depend on the machine (the README records them with this
command). The server runs as its own process (`sls-router serve`), the clients here.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay_prompts(n: int) -> list[str]:
    path = resources.files("sls_router") / "data" / "replay" / "logparsing.jsonl.gz"
    seen: dict[str, None] = {}
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        for line in fh:
            seen.setdefault(json.loads(line)["prompt"])
            if len(seen) >= n:
                break
    return list(seen)


POOL = """
reference_model = "j2-ultra"
embedder = "{embedder}"

[router]
random_state = 0
{router}

[[replay]]
bundled = "logparsing"
latency = "modelled"
"""


async def client(base_url: str, prompts: list[str], rng: random.Random, out: dict) -> None:
    """One client on its own keep-alive connection: R streamed requests in turn, each
    followed by its feedback. Raw httpx and json: the openai client's parsing (or one
    pool shared by 200 connections) would make this process the bottleneck on 2 cores;
    the openai client's own streaming is in the tests."""
    async with httpx.AsyncClient(timeout=120) as http:
        await _requests(base_url, prompts, rng, http, out)


async def _requests(
    base_url: str, prompts: list[str], rng: random.Random, http: httpx.AsyncClient, out: dict
) -> None:
    for _ in range(out["requests_per_client"]):
        body = {
            "model": "sls-router",
            "messages": [{"role": "user", "content": rng.choice(prompts)}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        chunks, done = [], False
        async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunks.append(json.loads(line[6:]))
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        if not (done and finish and chunks[-1].get("usage") and text.strip()):
            out["unanswered"] += 1
            continue
        facts = finish[0]["sls"]
        out["answered"] += 1
        out["cache_hits"] += facts["sls_cache_hit"]
        score = 1.0 if rng.random() < 0.9 else 0.0
        response = await http.post(
            f"{base_url}/feedback", json={"request_id": facts["sls_request_id"], "score": score}
        )
        out["feedback_sent"] += 1
        out["feedback_accepted"] += response.status_code == 200


async def load(base_url: str, clients: int, requests: int, distinct: int, seed: int) -> dict:
    prompts = replay_prompts(distinct)
    out = dict(
        requests_per_client=requests,
        answered=0,
        unanswered=0,
        cache_hits=0,
        feedback_sent=0,
        feedback_accepted=0,
    )
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            client(base_url, prompts, random.Random(seed * 100_003 + i), out)
            for i in range(clients)
        ),
        return_exceptions=True,
    )
    out["wall_s"] = time.perf_counter() - started
    out["errors"] = [repr(r) for r in results if isinstance(r, BaseException)][:5]
    async with httpx.AsyncClient(timeout=120) as http:
        out["dashboard"] = (await http.get(base_url.removesuffix("/v1") + "/dashboard/data")).json()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--distinct", type=int, default=2000, help="distinct prompts drawn from")
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--update-every-n",
        type=int,
        help="refit the predictors every N feedbacks (the router's default: 200)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "pool.toml"
        router = "" if args.update_every_n is None else f"update_every_n = {args.update_every_n}"
        config.write_text(POOL.format(embedder=args.embedder, router=router))
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "sls_router.bench.cli",
            "serve",
            "--config",
            str(config),
            "--state",
            str(Path(tmp) / "state"),
            "--port",
            str(port),
        ]
        log = (Path(tmp) / "server.log").open("w")
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print((Path(tmp) / "server.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
            out = asyncio.run(
                load(f"{url}/v1", args.clients, args.requests, args.distinct, args.seed)
            )
            server_feedback = out["dashboard"]["totals"]["feedback"]
        finally:
            server.send_signal(signal.SIGTERM)  # graceful: finish, save the state, close
            code = server.wait(120)
            log.close()
        saved = (Path(tmp) / "state" / "manifest.json").exists()
        server_log = (Path(tmp) / "server.log").read_text()

    total = args.clients * args.requests
    overhead = out["dashboard"]["overhead_ms"]
    totals = out["dashboard"]["totals"]
    print(
        f"{args.clients} concurrent streaming clients x {args.requests} requests = {total} "
        f"requests on 127.0.0.1 ({os.cpu_count()} CPUs, embedder {args.embedder}, modelled "
        f"latency) in {out['wall_s']:.1f} s"
    )
    print(
        f"answered {out['answered']}/{total} (cache hits {out['cache_hits']}), "
        f"feedback accepted {out['feedback_accepted']}/{out['feedback_sent']}, counted by the "
        f"server {server_feedback}; state saved on SIGTERM: {saved} (exit code {code})"
    )
    print(
        f"server overhead per request (server time minus model time, n={overhead['n']}): "
        f"p50 {overhead['p50']:.1f} ms, p99 {overhead['p99']:.1f} ms, max {overhead['max']:.1f} ms"
    )
    print(
        f"spend ${totals['spend_usd']:.4f}, est. savings vs {totals['reference_model']} "
        f"${totals['savings_usd']:.4f}"
    )
    if out["errors"]:
        print("errors:", out["errors"], file=sys.stderr)
        errors = [ln for ln in server_log.splitlines() if "INFO" not in ln]
        print("server log:", "\n".join(errors[-40:]), file=sys.stderr)
    ok = (
        out["answered"] == total
        and out["feedback_accepted"] == out["feedback_sent"] == total
        and server_feedback == total
        and saved
        and code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
