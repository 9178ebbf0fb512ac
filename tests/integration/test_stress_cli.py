"""`sls-router stress --quick` itself: it runs every scenario, writes the documented JSON
keys and meets the goals (the quick size kills 5 children instead of 20)."""

from __future__ import annotations

import json

from sls_router.bench.cli import main

KEYS = (
    "answered_fraction",
    "feedback_lost",
    "cross_tenant_hits",
    "kill9_trials",
    "kill9_loaded",
    "bad_inputs_tried",
    "bad_inputs_clear_errors",
    "rss_mb_start",
    "rss_mb_end",
    "rss_requests",
    "durations_s",
    "goals",
)


def test_stress_quick_meets_every_goal(tmp_path, capsys):
    out = tmp_path / "stress.json"
    code = main(["stress", "--quick", "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert code == 0, printed
    assert all(key in result for key in KEYS)
    assert result["size"] == "quick" and "answered_fraction" in printed
    assert result["answered_fraction"] == 1.0
    assert result["feedback_lost"] == 0 and result["load_consistent"]
    assert result["cross_tenant_hits"] == 0 and result["tenants"]["hits_within_tenant"] > 0
    assert result["kill9_loaded"] == result["kill9_trials"] >= 5
    assert result["bad_inputs_clear_errors"] == result["bad_inputs_tried"] >= 50
    assert result["mischarged_requests"] == 0
    memory = result["memory"]
    assert memory["rss_cache_entries"] == memory["rss_cache_capacity"]
    assert result["rss_mb_start"] > 0 and result["rss_mb_end"] > 0
    assert all(met for _, _, met in result["goals"].values())
