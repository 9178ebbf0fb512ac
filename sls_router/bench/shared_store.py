"""Figures of the shared PostgreSQL store against the embedded default.

`lookup_figures`: p50/p99 of one scoped nearest-neighbour lookup at N entries, through
pgvector (SQL round trip included) and through the local FAISS store, on the same
clustered vectors as `sls-router overhead`.

`replica_figures`: P processes answer recorded log-parsing requests at the same time,
with label feedback on every answer, either sharing one database or each with its own
local store; it reports requests per second, cache hits (and hits on entries another
process stored), and checks the shared tables: feedback rows against the feedback
calls made, one entry per request id. Requests are replayed (recorded answers, no
sleeping), so the figures are the router's and the store's own costs.

Run as `python -m sls_router.bench.shared_store worker ...` to be one replica.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..cache.entries import LocalEntries
from ..cache.semantic import CacheEntry
from ..embeddings import get_embedder
from ..replay import load_dataset, replay_pool
from .overhead import clustered, traffic
from .trace import judge_hit

DATA = Path(__file__).resolve().parent.parent / "data" / "replay" / "logparsing.jsonl.gz"
_SCOPE = "bench"


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


# -- lookups ------------------------------------------------------------------------
def lookup_figures(
    url: str, entries: int = 100_000, lookups: int = 1000, embedder: str = "static", seed: int = 0
) -> dict[str, Any]:
    """Time scoped k=10 lookups at `entries` entries in PostgreSQL and in local FAISS."""
    from ..store.postgres import Database, PostgresEntries

    rng = np.random.default_rng(seed)
    emb = get_embedder(embedder)
    vectors = clustered(emb.encode(traffic(min(entries, 5000), rng)), entries, rng)
    queries = clustered(vectors[:5000], lookups, rng)
    local = LocalEntries(emb.dim)
    for i in tqdm(range(entries), desc="local store", mininterval=2):
        local.add(_entry(i), vectors[i])
    db = Database(url, emb.name, emb.dim)
    started = time.perf_counter()
    _bulk_load(db, vectors)
    load_s = time.perf_counter() - started
    remote = PostgresEntries(db, "bench")
    figures: dict[str, Any] = {
        "entries": entries,
        "lookups": lookups,
        "embedder": emb.name,
        "postgres_load_and_index_s": round(load_s, 1),
    }
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    for name, store in (("local_faiss", local), ("postgres_pgvector", remote)):
        ms, recall = [], []
        for q, truth in zip(queries, exact):
            t = time.perf_counter()
            result = store.search(_SCOPE, q, 10, 0.0)
            ms.append((time.perf_counter() - t) * 1e3)
            if result is None:  # only a shared store answers None: its database is down
                raise RuntimeError(f"{name}: the database could not be reached")
            found, _ = result
            recall.append(len({e.id for e, _ in found} & set(truth.tolist())) / 10)
        figures[name] = {**_percentiles(ms), "recall_at_10": round(float(np.mean(recall)), 3)}
    db.close()
    return figures


def _entry(i: int) -> CacheEntry:
    return CacheEntry(
        id=i,
        scope=_SCOPE,
        text=f"synthetic {i}",
        answer=f"answer {i}",
        answer_hash=f"h{i}",
        created_at=0.0,
    )


def _bulk_load(db: Any, vectors: np.ndarray) -> None:
    """COPY without the HNSW index, then build it once (row by row into an indexed
    table took 3-6 ms per row here; this takes about a minute for 100,000). The index is
    rebuilt from its own definition, as the store's schema made it."""
    with db.pool.connection() as conn:
        index = conn.execute(
            "SELECT pg_get_indexdef('sls_cache_entries_embedding'::regclass)"
        ).fetchone()[0]
        conn.execute("DROP INDEX sls_cache_entries_embedding")
        conn.execute("TRUNCATE sls_cache_entries")
        with conn.cursor().copy(
            "COPY sls_cache_entries (id, scope, text, answer, answer_hash, "
            "embedding, created_at, confirmed, verdicts, replica) "
            "FROM STDIN"
        ) as copy:
            for i in tqdm(range(len(vectors)), desc="postgres COPY", mininterval=2):
                copy.write_row(
                    (
                        i,
                        _SCOPE,
                        f"synthetic {i}",
                        f"answer {i}",
                        f"h{i}",
                        vectors[i],
                        0.0,
                        True,
                        "[0, 0, -1.0, 2.0]",
                        "bench",
                    )
                )
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(index)
        conn.execute("ANALYZE sls_cache_entries")


# -- replicas -----------------------------------------------------------------------
def worker(state: str, start: int, n: int, common: int, seed: int) -> dict[str, Any]:
    """One replica: `common` requests every replica shares (same ids, racing inserts),
    then its own `n` from `start`; label feedback on every answer. It says "ready" on
    stdout and waits for a line on stdin, so that every replica starts together."""
    from ..router import SmartRouter
    from ..types import Request

    dataset = load_dataset(DATA)
    records = list(dataset)
    mine = records[:common] + records[start : start + n]
    router = SmartRouter.open(state, replay_pool(dataset), embedder="static", random_state=seed)
    print("ready", flush=True)
    sys.stdin.readline()
    hits: list[int] = []
    feedback = 0
    started = time.perf_counter()
    for i, rec in enumerate(mine):
        request_id = rec.id if i < common else f"{rec.id}#{seed}"
        response = router.complete(
            Request(prompt=rec.prompt, query=rec.query, task=rec.task, id=request_id)
        )
        if response.cache_hit:
            hits.append(int(response.raw["cache_entry"]))
            right = judge_hit(rec, response.text, None, None)
        else:
            right = rec.responses[response.model].score >= 0.5
        router.feedback(response.request_id, float(right), source="label")
        feedback += 1
    wall = time.perf_counter() - started
    router.save()  # waits for every queued write
    router.close()
    return {
        "requests": len(mine),
        "wall_s": wall,
        "hits": len(hits),
        "hit_entries": hits,
        "feedback_calls": feedback,
        "replica": getattr(router.store, "replica", None),
    }


def replica_figures(
    states: list[str],
    per_process: int = 500,
    common: int = 50,
) -> dict[str, Any]:
    """Run one worker process per state (all the same URL, or one directory each)."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sls_router.bench.shared_store",
                "worker",
                state,
                str(1000 + k * per_process),
                str(per_process),
                str(common),
                str(k),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k, state in enumerate(states)
    ]
    for proc in procs:  # every replica has loaded its data, models and state
        assert proc.stdout is not None and proc.stdin is not None  # both PIPEs
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a replica failed to start; see its stderr")
    for proc in procs:
        assert proc.stdin is not None  # a PIPE
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a replica failed (exit {proc.returncode}); see its stderr")
        results.append(json.loads(out.strip().splitlines()[-1]))
    requests = sum(r["requests"] for r in results)
    wall = max(r["wall_s"] for r in results)
    return {
        "processes": len(states),
        "requests": requests,
        "requests_per_s": round(requests / wall, 1),
        "wall_s": round(wall, 2),
        "cache_hits": sum(r["hits"] for r in results),
        "feedback_calls": sum(r["feedback_calls"] for r in results),
        "per_process": results,
    }


def shared_tables(url: str) -> dict[str, int]:
    """Counts the multi-process check needs from the shared tables."""
    import psycopg

    with psycopg.connect(url) as conn:

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()
            assert row is not None  # a count is one row
            return int(row[0])

        return {
            "feedback_rows": one("SELECT count(*) FROM sls_feedback"),
            "entries": one("SELECT count(*) FROM sls_cache_entries"),
            "request_ids": one("SELECT count(DISTINCT request_id) FROM sls_cache_entries"),
            "outcome_rows": one("SELECT count(*) FROM sls_outcomes"),
        }


def entry_owners(url: str, entry_ids: list[int]) -> dict[int, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, replica FROM sls_cache_entries WHERE id = ANY(%s)", (entry_ids,)
        ).fetchall()
    return {int(i): r for i, r in rows}


def compare_replicas(
    url: str, processes: int = 4, per_process: int = 500, common: int = 50
) -> dict[str, Any]:
    """Shared database vs one local store per process, same requests."""
    shared = replica_figures([url] * processes, per_process, common)
    with tempfile.TemporaryDirectory() as tmp:
        local = replica_figures(
            [str(Path(tmp) / f"r{k}") for k in range(processes)], per_process, common
        )
    for run in (shared, local):
        for r in run.pop("per_process"):
            r.pop("hit_entries")
    return {"shared_postgres": {**shared, **shared_tables(url)}, "local_stores": local}


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        state, start, n, common, seed = argv[1:6]
        print(json.dumps(worker(state, int(start), int(n), int(common), int(seed))))
        return
    raise SystemExit(
        "usage: python -m sls_router.bench.shared_store worker STATE START N "
        "COMMON SEED (or use `sls-router shared-store`)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
