"""The dashboard in headless Chromium (Debian's `chromium`, installed by `make install`):
it loads without console errors and shows the figures /metrics reports."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import openai
import pytest
from serve_harness import prompts, start, write_pool

CHARTS = ("spend-chart", "hit-chart", "model-chart")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is missing: `make install` installs Debian's package"
)


def _metrics(url: str) -> dict[str, float]:
    """Sum of each sample over its labels, from the Prometheus text format."""
    totals: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            name = name.split("{")[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def _chromium(url: str, tmp_path) -> tuple[str, str]:
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _shown(dom: str, element: str) -> str:
    match = re.search(rf'id="{element}"[^>]*>([^<]*)<', dom)
    assert match, f"#{element} is not on the page"
    return match.group(1)


def test_the_dashboard_shows_what_metrics_reports(tmp_path):
    running = start(write_pool(tmp_path, tenants=False))
    try:
        client = openai.OpenAI(base_url=running.base_url, api_key="any", max_retries=0)
        for i, prompt in enumerate(prompts(6) * 2):  # the repeats come from the cache
            answer = client.chat.completions.create(
                model="sls-router", messages=[{"role": "user", "content": prompt}]
            )
            request_id = answer.model_extra["sls"]["sls_request_id"]
            feedback = {"request_id": request_id, "score": float(i % 5 != 0)}
            assert httpx.post(f"{running.base_url}/feedback", json=feedback).is_success
        assert httpx.post(f"{running.base_url}/chat/completions", content=b"{").status_code == 400

        dom, log = _chromium(f"{running.url}/dashboard", tmp_path)
        figures = _metrics(running.url)
    finally:
        running.stop()
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    requests = figures["sls_requests_total"]
    spend = figures["sls_spend_usd_total"]
    reference = figures["sls_reference_spend_usd_total"]
    assert requests == 12 and figures["sls_feedback_total"] == 12
    assert _shown(dom, "requests") == f"{requests:.0f}"
    assert _shown(dom, "spend") == f"${spend:.6f}"
    assert _shown(dom, "savings") == f"${reference - spend:.6f}" and reference > spend
    assert _shown(dom, "feedback") == "12"
    assert _shown(dom, "refused") == f"{figures['sls_refused_requests_total']:.0f}" == "1"
    hits = figures["sls_cache_hits"]
    assert _shown(dom, "hit-rate") == f"{100 * hits / requests:.1f}%" and hits >= 1
    judged = figures["sls_cache_wrong_hits"] + figures["sls_cache_right_hits"]
    if judged:
        wrong = figures["sls_cache_wrong_hits"] / judged
        assert _shown(dom, "wrong-rate") == f"{100 * wrong:.1f}%"
    assert _shown(dom, "breakers") == "none"
    assert dom.count("<tr>") >= 12  # the recent decisions, one row each (plus the header)
    charts = {c: re.search(rf'<svg id="{c}".*?</svg>', dom, re.S) for c in CHARTS}
    assert all(charts.values()), "a chart is missing"
    assert "<path" in charts["spend-chart"].group(0) and "<path" in charts["hit-chart"].group(0)
    assert "<rect" in charts["model-chart"].group(0)  # the models' shares
    assert "Est. savings vs j2-ultra" in dom
