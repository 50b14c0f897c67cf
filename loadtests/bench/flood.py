"""``reengage bench flood``: /v1/score while refused admin calls arrive at full speed.

Interleaved windows on one application: quiet (wrk on /v1/score alone), flood (the same
wrk, and a second wrk hammering an admin route with a wrong bearer token), quiet, flood,
... quiet. Each window gives /v1/score's p50/p99 from wrk; the quiet rounds' spread is the
run's noise, beside which the flood windows' p99 is read. For each flood window the audit
log's growth is counted (refusal lines, and the per-second "refusals suppressed" lines
with their counts) and set beside its bound (``serving.audit.refusal_lines_bound``:
``auth.refused_log_per_s`` per second and source, per ingress replica).

Against a running application (``--url``; its audit log is the settings' one) or one the
bench starts on a private Ray head, as `reengage bench score` does, with its audit log and
bandit state in a scratch folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtests.bench.wrk import lua_script, request_bodies, run_wrk
from serving.audit import AuditLog, refusal_lines_bound
from serving.settings import Settings

FLOOD_PATH = "/v1/admin/repository/churn/versions/1/unload"  # an admin route: token needed
WRONG_TOKEN = "rng_flood-not-a-token"  # the bench's wrong bearer token (nobody issued it)
SETTLE_S = 1.5  # after a flood: the audit writer's last suppressed-count line lands


def wrk_scripts(workdir: Path, customers: int, ids: int) -> tuple[Path, Path]:
    """wrk scripts: /v1/score with ``ids`` ids a request, and the refused admin call."""
    bodies = workdir / "score-bodies.txt"
    bodies.write_text("\n".join(request_bodies(customers, ids, 64, seed=ids)) + "\n")
    empty = workdir / "flood-bodies.txt"
    empty.write_text("{}\n")
    score = workdir / "score.lua"
    score.write_text(lua_script(bodies, "/v1/score"))
    flood = workdir / "flood.lua"
    flood.write_text(lua_script(empty, FLOOD_PATH, {"Authorization": f"Bearer {WRONG_TOKEN}"}))
    return score, flood


def flood(url: str, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    """wrk sends the refused admin call at full speed for ``seconds``; its counts by status."""
    return run_wrk(url + FLOOD_PATH, script, concurrency=connections, seconds=seconds)


def audit_growth(settings: Settings, since: float, until: float) -> dict[str, int]:
    """The audit lines written in [since, until] (rotated files too): refusals,
    suppressed-count lines and the refusals they count."""
    out = {"lines": 0, "refusals": 0, "summaries": 0, "suppressed": 0}
    assert settings.auth.audit_log is not None  # resolved by Settings
    # an entry's ts is rounded to the millisecond: so are the window's ends (rounding keeps
    # order, so a line written inside the window is never read as outside it)
    since, until = round(since, 3), round(until, 3)
    for entry in AuditLog(settings.auth.audit_log, settings.auth.audit_rotation).read():
        if not since <= float(entry.get("ts", 0)) <= until:
            continue
        out["lines"] += 1
        if entry.get("action") == "refusals suppressed":
            out["summaries"] += 1
            out["suppressed"] += int(entry.get("details", {}).get("suppressed", 0))
        elif entry.get("result") == "denied":
            out["refusals"] += 1
    return out


def flood_window(
    url: str,
    scripts: tuple[Path, Path],
    settings: Settings,
    seconds: float,
    connections: tuple[int, int],
) -> dict[str, Any]:
    """One flood window: /v1/score and the refused calls side by side, then the audit log."""
    result: dict[str, Any] = {}
    start = time.time()
    hammer = threading.Thread(
        target=lambda: result.update(flood=flood(url, scripts[1], seconds, connections[1]))
    )
    hammer.start()
    score = run_wrk(url + "/v1/score", scripts[0], concurrency=connections[0], seconds=seconds)
    hammer.join()
    time.sleep(SETTLE_S)
    end = time.time()
    return {
        "score": score,
        **result,
        "audit": audit_growth(settings, start, end),
        "window_s": end - start,
    }


def run_flood_bench(
    settings: Settings,
    *,
    url: str | None = None,
    seconds: float = 30.0,
    rounds: int = 3,
    score_connections: int = 4,
    flood_connections: int = 16,
    ids: int = 10,
    out_json: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Quiet and flood windows in turn (``rounds`` floods, one more quiet); print and return."""
    console = console or Console()
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="reengage-flood-"))
    with _app(settings, url, workdir) as (app_url, app_settings):
        scripts = wrk_scripts(workdir, app_settings.data.customers, ids)
        quiet: list[dict[str, Any]] = []
        floods: list[dict[str, Any]] = []
        run_wrk(app_url + "/v1/score", scripts[0], concurrency=score_connections, seconds=2)
        for r in range(rounds + 1):
            console.print(f"round {r + 1}: quiet {seconds:g} s")
            quiet.append(
                run_wrk(
                    app_url + "/v1/score",
                    scripts[0],
                    concurrency=score_connections,
                    seconds=seconds,
                )
            )
            if r < rounds:
                console.print(f"round {r + 1}: flood {seconds:g} s")
                floods.append(
                    flood_window(
                        app_url,
                        scripts,
                        app_settings,
                        seconds,
                        (score_connections, flood_connections),
                    )
                )
        result = summarize(app_settings, quiet, floods, seconds)
    result["meta"] = {
        "url": url or "a private Ray head (started by the bench)",
        "seconds": seconds,
        "rounds": rounds,
        "score_connections": score_connections,
        "flood_connections": flood_connections,
        "ids": ids,
        "refused_log_per_s": settings.auth.refused_log_per_s,
    }
    print_result(result, console)
    if out_json is not None:
        out_json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def summarize(
    settings: Settings, quiet: list[dict[str, Any]], floods: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """p99 quiet (median, min, max) vs flood, and the audit log's growth vs its bound."""
    replicas = settings.server.ingress_replicas
    replicas = replicas if isinstance(replicas, int) else settings.server.max_replicas
    rate = settings.auth.refused_log_per_s
    for f in floods:
        f["bound"] = replicas * refusal_lines_bound(rate, f["window_s"])
        f["refused"] = sum(
            n for code, n in f["flood"]["status_codes"].items() if code in ("401", "403")
        )

    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "quiet": quiet,
        "floods": floods,
        "replicas": replicas,
        "p99_quiet_ms": spread([q["p99_ms"] for q in quiet]),
        "p99_flood_ms": spread([f["score"]["p99_ms"] for f in floods]),
        "p50_quiet_ms": spread([q["p50_ms"] for q in quiet]),
        "p50_flood_ms": spread([f["score"]["p50_ms"] for f in floods]),
        "score_errors": sum(q["errors"] for q in quiet) + sum(f["score"]["errors"] for f in floods),
    }


def print_result(result: dict[str, Any], console: Console) -> None:
    table = Table(title="/v1/score under a flood of refused admin calls")
    columns = ("window", "req/s", "p50 ms", "p99 ms", "refused/s", "audit +", "bound", "counted")
    for column in columns:
        table.add_column(column, justify="right")
    quiet, floods = result["quiet"], result["floods"]
    for i, q in enumerate(quiet):
        table.add_row(f"quiet {i + 1}", f"{q['req_s']:.0f}", _ms(q["p50_ms"]), _ms(q["p99_ms"]))
        if i < len(floods):
            f = floods[i]
            a = f["audit"]
            table.add_row(
                f"flood {i + 1}",
                f"{f['score']['req_s']:.0f}",
                _ms(f["score"]["p50_ms"]),
                _ms(f["score"]["p99_ms"]),
                f"{f['refused'] / f['flood']['seconds']:.0f}",
                f"{a['lines']}",
                str(f["bound"]),
                f"{a['suppressed']:,}",
            )
    console.print(table)
    console.print(
        "audit +: lines the window added (refusals and one suppressed-count line a second per "
        "source); bound: replicas x refusal_lines_bound; counted: refusals in those counts"
    )
    for p in ("p50", "p99"):
        q, fl = result[f"{p}_quiet_ms"], result[f"{p}_flood_ms"]
        console.print(
            f"{p} quiet {q['median']:.2f} ms (rounds {q['min']:.2f}-{q['max']:.2f}) vs flood "
            f"{fl['median']:.2f} ms (rounds {fl['min']:.2f}-{fl['max']:.2f})"
        )
    console.print(f"/v1/score errors: {result['score_errors']}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@contextlib.contextmanager
def _app(settings: Settings, url: str | None, workdir: Path) -> Iterator[tuple[str, Settings]]:
    """The running application at ``url``, or one on a private Ray head with its audit log
    and bandit state in ``workdir`` (the operator's own are not touched)."""
    if url is not None:
        yield url.rstrip("/"), settings
        return
    from loadtests.bench.targets import ray_serve

    settings = settings.model_copy(deep=True)
    settings.auth.audit_log = workdir / "audit.jsonl"
    settings.bandit.state_path = workdir / "bandit"
    settings.llm.enabled = False
    with ray_serve(settings, workdir, hello=False) as started:
        yield started, settings
