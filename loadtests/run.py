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


def locust_command(host: str, *, users: int, spawn_rate: float, run_time_s: int, scenario: str,
                   csv_prefix: str, options: dict[str, Any] | None = None) -> list[str]:
    """The ``locust`` command line; ``options`` are the locustfile's own (``batch_size=...``)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
           "-u", str(users), "-r", str(spawn_rate), "-t", f"{run_time_s}s", "--csv", csv_prefix,
           "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"]
    for key, value in (options or {}).items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd + list(user_classes(scenario))


def run_loadtest(host: str, *, users: int, spawn_rate: float, run_time_s: int, scenario: str,
                 csv_prefix: str | None, console: Any = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``scenario`` against ``host`` and return its figures.

    Returns ``{"scenario", "users", "run_time_s", "requests", "failures", "rps",
    "failure_rate", "p50_ms", "p99_ms", "avg_ms", "max_ms", "endpoints": {name: {...}},
    "errors": [{"name", "error", "occurrences"}], "exit_code", "csv_prefix"}``; the CSV
    files stay under ``csv_prefix`` when given. ``console``: a rich Console for progress.
    """
    with tempfile.TemporaryDirectory(prefix="reengage-locust-") as tmp:
        prefix = csv_prefix or str(Path(tmp) / "run")
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        cmd = locust_command(host, users=users, spawn_rate=spawn_rate, run_time_s=run_time_s, scenario=scenario,
                             csv_prefix=prefix, options=options)
        code, log = _run(cmd, run_time_s, console, f"locust {scenario}: {users} users, {run_time_s}s")
        stats_file = Path(f"{prefix}_stats.csv")
        if not stats_file.exists():
            raise RuntimeError(f"locust wrote no stats (exit {code}):\n{log[-2000:]}")
        result = parse_stats(stats_file)
        result["errors"] = parse_failures(Path(f"{prefix}_failures.csv"))
    result.update(scenario=scenario, users=users, run_time_s=run_time_s, exit_code=code, csv_prefix=csv_prefix)
    return result


def _run(cmd: list[str], run_time_s: int, console: Any, label: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
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


_EMPTY = {"Request Count": "0", "Failure Count": "0", "Requests/s": "0", "50%": "nan", "99%": "nan",
          "Average Response Time": "nan", "Max Response Time": "nan"}


def parse_failures(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{"name": f"{r['Method']} {r['Name']}", "error": r["Error"], "occurrences": int(r["Occurrences"])}
                for r in csv.DictReader(f)]
