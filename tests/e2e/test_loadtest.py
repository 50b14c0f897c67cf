"""A short locust run against the real application: every request must succeed.

``app_url`` is the session's application (tests/e2e/conftest.py). Ids span a range
wider than small test data on purpose: unknown customers are ``found: false``, not
errors, so they must not fail either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.run import run_loadtest

pytestmark = pytest.mark.e2e


def test_mixed_scenario_runs_without_failures(
    app_url: str, tmp_path: Path, admin_token: str
) -> None:
    result = run_loadtest(
        app_url,
        users=6,
        spawn_rate=6,
        run_time_s=5,
        scenario="mixed",
        csv_prefix=str(tmp_path / "mixed"),
        options={"batch_size": 20, "id_max": 2000, "v2_rows": 8, "feedback_share": 0.5},
        token=admin_token,
    )  # feedback needs a token by default
    assert result["errors"] == [] and result["failures"] == 0, result["errors"]
    assert result["requests"] > 0
    for endpoint in ("POST /v1/score", "POST /v2/models/[model]/infer"):
        assert result["endpoints"][endpoint]["requests"] > 0, endpoint
    assert Path(f"{tmp_path / 'mixed'}_stats.csv").exists()
