"""Run a locust scenario headless in a subprocess and read back its CSV stats.

A subprocess, not locust as a library: locust monkey-patches the interpreter with
gevent at import, which must not happen inside the CLI or pytest.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.scenarios import LOCUSTFILE, user_classes

_GRACE_S = 60  # start-up, stop-timeout and CSV writing beyond run_time_s


def locust_command(
    host: str,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: int,
    scenario: str,
    csv_prefix: str,
    options: dict[str, Any] | None = None,
    html: str | None = None,
) -> list[str]:
    """The ``locust`` command line; ``options`` are the locustfile's own (``batch_size=...``);
    ``html``: where locust writes its HTML report."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{run_time_s}s",
        "--csv",
        csv_prefix,
        "--only-summary",
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
    ]
    if html:
        cmd += ["--html", html]
    for key, value in (options or {}).items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd + list(user_classes(scenario))


def run_loadtest(
    host: str,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: int,
    scenario: str,
    csv_prefix: str | None,
    console: Any = None,
    options: dict[str, Any] | None = None,
    token: str | None = None,
    html: str | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` against ``host`` and return its figures.

    Returns ``{"scenario", "users", "run_time_s", "requests", "failures", "rps",
    "failure_rate", "p50_ms", "p99_ms", "avg_ms", "max_ms", "endpoints": {name: {...}},
    "errors": [{"name", "error", "occurrences"}], "exit_code", "csv_prefix"}``; the CSV
    files stay under ``csv_prefix`` when given, locust's HTML report at ``html`` when given.
    ``console``: a rich Console for progress.
    ``token``: the bearer token every request carries (feedback needs one by default); it
    reaches locust in its environment, never on its command line.
    """
    with tempfile.TemporaryDirectory(prefix="reengage-locust-") as tmp:
        prefix = csv_prefix or str(Path(tmp) / "run")
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        cmd = locust_command(
            host,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time_s,
            scenario=scenario,
            csv_prefix=prefix,
            options=options,
            html=html,
        )
        code, log = _run(
            cmd, run_time_s, console, f"locust {scenario}: {users} users, {run_time_s}s", token
        )
        stats_file = Path(f"{prefix}_stats.csv")
        if not stats_file.exists():
            raise RuntimeError(f"locust wrote no stats (exit {code}):\n{log[-2000:]}")
        result = parse_stats(stats_file)
        result["errors"] = parse_failures(Path(f"{prefix}_failures.csv"))
    result.update(
        scenario=scenario,
        users=users,
        run_time_s=run_time_s,
        exit_code=code,
        csv_prefix=csv_prefix,
        html=html if html and Path(html).exists() else None,
    )
    return result


def slo_violations(
    result: dict[str, Any], *, p99_ms: float | None = None, failure_rate: float | None = None
) -> list[str]:
    """What missed its objective: the whole run and every endpoint against the same bounds.

    A run with no request misses any objective given (nothing was shown to meet it).
    """
    out: list[str] = []
    if (p99_ms is not None or failure_rate is not None) and not result.get("requests"):
        return ["no request completed"]
    for name, figures in [("all", result), *sorted(result.get("endpoints", {}).items())]:
        if not figures.get("requests"):
            continue
        p99 = figures["p99_ms"]
        if p99_ms is not None and not p99 <= p99_ms:  # NaN misses too
            out.append(f"{name}: p99 {p99:.0f} ms > {p99_ms:g} ms")
        if failure_rate is not None and figures["failure_rate"] > failure_rate:
            out.append(f"{name}: failure rate {figures['failure_rate']:.2%} > {failure_rate:.2%}")
    return out


def endpoint_table(result: dict[str, Any]) -> Any:
    """A rich Table: one row per endpoint, then the whole run (names printed as written)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        "endpoint",
        "requests",
        "failures",
        "fail %",
        "req/s",
        "p50 ms",
        "p99 ms",
        "avg ms",
        "max ms",
        title=f"locust: {result.get('scenario', '')}, {result.get('users', '?')} users, "
        f"{result.get('run_time_s', '?')} s",
    )
    rows = [*sorted(result.get("endpoints", {}).items()), ("all", result)]
    for name, f in rows:
        table.add_row(
            Text(name, style="bold" if name == "all" else ""),
            f"{f['requests']:,}",
            f"{f['failures']:,}",
            f"{100 * f['failure_rate']:.2f}",
            f"{f['rps']:.1f}",
            _ms(f["p50_ms"]),
            _ms(f["p99_ms"]),
            _ms(f["avg_ms"]),
            _ms(f["max_ms"]),
        )
    return table


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def _run(
    cmd: list[str], run_time_s: int, console: Any, label: str, token: str | None = None
) -> tuple[int, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if token:
        env["REENGAGE_LOAD_TOKEN"] = token
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait(proc, run_time_s, console, label)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        return proc.returncode, out.read()


def _wait(proc: subprocess.Popen[bytes], run_time_s: int, console: Any, label: str) -> None:
    deadline = time.monotonic() + run_time_s + _GRACE_S
    if console is None:
        proc.wait(timeout=run_time_s + _GRACE_S)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    start = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=run_time_s)
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"locust ran past {run_time_s + _GRACE_S} s")
            progress.update(task, completed=min(run_time_s, time.monotonic() - start))
            time.sleep(0.25)


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:  # "N/A" when an endpoint saw no request
        return float("nan")


def _row(row: dict[str, str]) -> dict[str, Any]:
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])
    return {
        "requests": requests,
        "failures": failures,
        "rps": _num(row["Requests/s"]),
        "failure_rate": failures / requests if requests else 0.0,
        "p50_ms": _num(row["50%"]),
        "p99_ms": _num(row["99%"]),
        "avg_ms": _num(row["Average Response Time"]),
        "max_ms": _num(row["Max Response Time"]),
    }


def parse_stats(path: Path) -> dict[str, Any]:
    """The ``Aggregated`` row's figures, plus one entry per endpoint under ``endpoints``."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    endpoints = {f"{r['Type']} {r['Name']}": _row(r) for r in rows if r["Name"] != "Aggregated"}
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    result = _row(total) if total else _row({k: "0" for k in rows[0]} if rows else _EMPTY)
    result["endpoints"] = endpoints
    return result


_EMPTY = {
    "Request Count": "0",
    "Failure Count": "0",
    "Requests/s": "0",
    "50%": "nan",
    "99%": "nan",
    "Average Response Time": "nan",
    "Max Response Time": "nan",
}


def parse_failures(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [
            {
                "name": f"{r['Method']} {r['Name']}",
                "error": r["Error"],
                "occurrences": int(r["Occurrences"]),
            }
            for r in csv.DictReader(f)
        ]
