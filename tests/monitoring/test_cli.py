"""``reengage monitor`` (table and --plot) and ``reengage card`` on real answers and cards."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from serving.monitoring import Thresholds, report
from tests.monitoring.conftest import score_all


@pytest.fixture
def drifted(make_dataplane: Any) -> dict[str, Any]:
    """A window that scored only the customers most likely to churn."""

    async def run() -> dict[str, Any]:
        dp = make_dataplane()
        first = await score_all(dp, np.arange(1, 4001, dtype=np.int64))
        await asyncio.sleep(1.1)
        start = time.time()
        await score_all(dp, first["ids"][first["churn"] > 0.4])
        dp.monitor.flush()
        out = report(
            dp.monitor.store,
            dp.monitor.references,
            Thresholds(min_rows=100),
            int(start),
            int(time.time()),
        ).to_json()  # the answer as the route sends it, which the CLI reads
        await dp.close()
        return out

    return asyncio.run(run())


def test_table_names_the_drift(drifted: dict[str, Any]) -> None:
    from serving.monitor_cli import print_report

    buf = io.StringIO()
    print_report(drifted, Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert "status drift" in text
    assert f"{drifted['models']['churn']['score']['psi']:.3f}" in text
    assert "four-fifths" in text and "premium" in text and "65+" in text


def test_plot_is_a_png(drifted: dict[str, Any], tmp_path: Path) -> None:
    from serving.monitor_cli import draw

    path = tmp_path / "monitor.png"
    draw(drifted, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_card_prints_the_newest_version(
    built_workspace: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_MODELS__REPO_PATH", built_workspace["models"]["repo_path"])
    r = CliRunner().invoke(app, ["card", "churn", "--raw"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("# Model card: churn, version 1")
    r = CliRunner().invoke(app, ["card", "engagement", "7"])
    assert r.exit_code == 1 and "no model card" in r.output


def test_bench_monitor_runs_both_cases_at_both_sizes(ws_settings: Any) -> None:
    from loadtests.bench.monitor import run_monitor_bench

    out = run_monitor_bench(
        ws_settings,
        sizes=(1, 50),
        calls=5,
        rounds=2,
        console=Console(file=io.StringIO(), width=200),
    )
    for n in (1, 50):
        r = out["sizes"][n]
        assert len(r["off_rounds"]) == len(r["on_rounds"]) == 2 and r["off"] > 0 and r["on"] > 0
        assert 0 < r["binning_queued_us"] and 0 < r["binning_us"]
