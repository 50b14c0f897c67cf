"""A flood of refused admin calls at full speed for 30 s against the session's app (two
ingress replicas behind HAProxy): the audit log grows by at most its rate-limit bound,
every refusal is written or counted in a "refusals suppressed" line (never silence), and
/v1/score answers 200 throughout. Its latency under the flood is measured by
`reengage bench flood` (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.bench.flood import SETTLE_S, audit_growth, flood, wrk_scripts
from serving.audit import refusal_lines_bound
from serving.settings import Settings
from tests.conftest import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FLOOD_S = 30
CONNECTIONS = 16


def test_a_flood_of_refused_admin_calls_is_bounded_in_the_audit_log_and_score_answers(
    app_url: str, app_overrides: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    require_tool("wrk")
    scripts = wrk_scripts(tmp_path, settings.data.customers, 10)
    answers: Counter[str] = Counter()
    stop = threading.Event()

    def score() -> None:  # a client calling /v1/score throughout
        rng = random.Random(7)
        with httpx.Client(base_url=app_url, timeout=30) as client:
            while not stop.is_set():
                ids = rng.sample(range(1, settings.data.customers + 1), 10)
                try:
                    answers[
                        str(client.post("/v1/score", json={"customer_ids": ids}).status_code)
                    ] += 1
                except httpx.HTTPError as exc:
                    answers[type(exc).__name__] += 1

    start = time.time()
    client = threading.Thread(target=score, daemon=True)
    client.start()
    try:
        hammered = flood(app_url, scripts[1], FLOOD_S, CONNECTIONS)
    finally:
        stop.set()
        client.join(timeout=60)
    time.sleep(SETTLE_S)
    end = time.time()
    growth = audit_growth(settings, start, end)
    replicas = app_overrides["server"]["ingress_replicas"]
    bound = replicas * refusal_lines_bound(settings.auth.refused_log_per_s, end - start)
    refused = sum(n for code, n in hammered["status_codes"].items() if code in ("401", "403"))
    print(
        f"\nflood {FLOOD_S} s: {refused:,} refused ({refused / hammered['seconds']:.0f}/s), "
        f"audit +{growth['lines']} lines (bound {bound}; {growth['summaries']} summaries, "
        f"{growth['suppressed']:,} suppressed); /v1/score {dict(answers)}"
    )
    assert refused == hammered["requests"] and refused > 5 * bound, hammered  # all refused
    assert 0 < growth["refusals"] and growth["lines"] <= bound, growth
    assert growth["summaries"] > 0 and growth["suppressed"] > 0, growth
    # never silence: every refusal is a line or counted in one (those in flight when wrk
    # stopped were refused too, but not counted by wrk)
    logged = growth["refusals"] + growth["suppressed"]
    assert refused <= logged <= refused + CONNECTIONS * replicas + 50, (refused, growth)
    assert set(answers) == {"200"} and answers["200"] >= FLOOD_S, answers
