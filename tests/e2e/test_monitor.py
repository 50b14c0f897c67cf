"""/v1/monitor on the real app (Ray Serve, HAProxy, two ingress replicas, embedded state):
the training population is ok, forced contacts show in their segment's ratio as the test
computes it from the answers, and `reengage monitor` reads the same answer."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.settings import Settings
from tests.e2e.conftest import E2E_CUSTOMERS, until

CONTACTS = ("discount_offer", "free_shipping", "content_digest", "winback_email")


def _since() -> str:
    """A window of the test's own: the next whole second."""
    time.sleep(1.05 - time.time() % 1)
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _monitor(app_url: str, headers: dict[str, str], since: str, rows: int) -> dict[str, Any]:
    """The answer once every replica's counts reached it (each flushes once a second)."""
    answer: dict[str, Any] = {}

    def arrived() -> bool:
        nonlocal answer
        r = httpx.get(f"{app_url}/v1/monitor", params={"since": since}, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        answer = r.json()
        return answer["window"]["rows"] >= rows

    assert until(arrived, 30), answer.get("window")
    return answer


@pytest.fixture(scope="module")
def profile(settings: Settings) -> pd.DataFrame:
    df = pd.read_parquet(settings.features.repo_path / "data" / "customer_profile.parquet")
    return df.sort_values("event_timestamp").groupby("customer_id").last()


def test_the_training_population_is_ok_across_replicas(
    app_url: str, admin_headers: dict[str, str]
) -> None:
    assert httpx.get(f"{app_url}/v1/monitor").status_code == 401  # admin group
    since = _since()
    ids = np.arange(1, E2E_CUSTOMERS + 1)
    for i in range(0, len(ids), 1000):
        r = httpx.post(
            f"{app_url}/v1/score", json={"customer_ids": ids[i : i + 1000].tolist()}, timeout=60
        )
        assert r.status_code == 200
    answer = _monitor(app_url, admin_headers, since, E2E_CUSTOMERS)
    assert answer["window"]["rows"] == E2E_CUSTOMERS
    assert answer["status"] == "ok", answer["status"]
    for name in ("churn", "engagement"):
        model = answer["models"][name]
        psis = [model["score"]["psi"], *(f["psi"] for f in model["features"])]
        assert all(p is not None and p < 0.1 for p in psis), (name, max(psis))
    bad = httpx.get(
        f"{app_url}/v1/monitor", params={"window_s": "-3"}, headers=admin_headers, timeout=30
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "window_s"


def test_forced_contacts_show_in_their_segment(
    app_url: str, admin_headers: dict[str, str], profile: pd.DataFrame
) -> None:
    since = _since()
    ids = np.arange(5001, 5401)
    r = httpx.post(f"{app_url}/v1/score", json={"customer_ids": ids.tolist()}, timeout=60)
    assert r.status_code == 200
    actions = list(r.json()["action"])
    premium = [int(c) for c in np.arange(6001, 6400) if profile.loc[c, "plan_tier"] == 2][:3]
    for c in premium:
        forced = httpx.post(
            f"{app_url}/v1/reengage",
            json={"customer_id": c, "action": "winback_email"},
            headers=admin_headers,
            timeout=180,
        )
        assert forced.status_code == 200, forced.text
    served = np.concatenate([ids, premium])
    contact = np.array([a in CONTACTS for a in actions] + [True] * len(premium))
    tiers = profile.loc[served, "plan_tier"].to_numpy()
    answer = _monitor(app_url, admin_headers, since, len(served))
    assert answer["window"]["rows"] == len(served)
    seg = next(
        s for s in answer["segments"] if s["feature"] == "plan_tier" and s["value"] == "premium"
    )
    want = contact[tiers == 2].mean() / contact.mean()
    assert seg["rows"] == int((tiers == 2).sum())
    assert seg["contact_rate_ratio"] == pytest.approx(want, abs=1e-12)


def test_the_cli_table_and_plot(
    app_url: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    admin_token: str,
) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_TOKEN", admin_token)
    plot = tmp_path / "monitor.png"
    r = CliRunner().invoke(
        app, ["monitor", "--url", app_url, "--window-s", "600", "--plot", str(plot)]
    )
    assert r.exit_code == 0, r.output
    assert "Drift by model version" in r.output and plot.read_bytes()[:4] == b"\x89PNG"
