"""``reengage``: build, serve, stop, demo, bench, loadtest, ope.

Options fill the same ``Settings`` object as ``REENGAGE_*`` variables and the ``args``
of ``deploy/serve.yaml``; an option given here wins over the environment.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any, Literal, Optional, cast

import typer
from rich.console import Console

from loadtests.bench.cli import bench_app
from serving.audit_cli import register as register_audit_commands
from serving.privacy_cli import register as register_privacy_commands
from serving.monitor_cli import register as register_monitor_commands
from serving.rollout_cli import register as register_rollout_commands
from serving.settings import load_settings

app = typer.Typer(
    help=(
        "reengage: real-time churn/engagement scoring, bandit actions and LLM emails on Ray Serve."
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(
    bench_app, name="bench"
)  # reengage bench score|features|bandit|trees|explain|monitor|rollout|consent|llm
register_audit_commands(app)  # reengage audit, reengage token
register_rollout_commands(app)  # reengage rollout start|status|promote|rollback|unload|load
register_privacy_commands(app)  # reengage privacy erase|consent
register_monitor_commands(app)  # reengage monitor, reengage card
console = Console()


@app.callback()
def _redacted_logs() -> None:
    """Every command's log lines (ours, Ray's, Feast's) go out with credentials masked."""
    from feature_store.redact import install_log_redaction

    install_log_redaction()


def _overrides(**sections: dict[str, Any]) -> dict[str, Any]:
    """Nested settings overrides from the options actually given (None: not given)."""
    out: dict[str, Any] = {}
    for section, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            out[section] = given
    return out


BackendOpt = typer.Option(
    None,
    "--state",
    "--backend",
    help="where features AND bandit state live: embedded "
    "(default, local files, one machine) or redis (production, any multi-node cluster)",
)
RedisOpt = typer.Option(None, "--redis-url", help="Redis URL for the redis backends")


def _state(state: Optional[str], redis_url: Optional[str]) -> dict[str, Any]:
    """The one state switch (settings ``state``, ``redis_url``): features and bandit move
    together."""
    return {k: v for k, v in {"state": state, "redis_url": redis_url}.items() if v is not None}


@app.command()
def build(
    customers: Optional[int] = typer.Option(
        None, help="synthetic customers to generate (default 100,000)"
    ),
    seed: Optional[int] = typer.Option(None, help="data seed"),
    backend: Optional[str] = BackendOpt,
    redis_url: Optional[str] = RedisOpt,
    snapshots: Optional[int] = typer.Option(
        None, help="weekly feature snapshots per customer (>= 2)"
    ),
    steps: Optional[str] = typer.Option(
        None,
        help="comma-separated subset of: "
        "generate,apply,materialize,train_churn,train_engagement,llm",
    ),
    force: bool = typer.Option(
        False, "--force", help="regenerate and re-materialize even when nothing changed"
    ),
    llm: bool = typer.Option(True, "--llm/--no-llm", help="also build the email-writer checkpoint"),
) -> None:
    """Generate data, feast apply, materialize, train and export model versions."""
    from serving.build import STEPS, run_build

    settings = load_settings(
        _overrides(
            data={"customers": customers, "seed": seed, "snapshots": snapshots},
            llm={"enabled": None if llm else False},
        )
        | _state(backend, redis_url)
    )
    chosen = tuple(s.strip() for s in steps.split(",")) if steps else STEPS
    if not settings.llm.enabled:
        chosen = tuple(s for s in chosen if s != "llm")
    summary = run_build(settings, console=console, steps=chosen, force=force)
    console.print_json(json.dumps(summary, default=str))


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="HTTP host (default 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="HTTP port (default 8000)"),
    grpc_port: Optional[int] = typer.Option(None, help="gRPC port (default 9000)"),
    detach: bool = typer.Option(False, "--detach", help="return once the application is ready"),
    address: Optional[str] = typer.Option(
        None, help="join this Ray cluster instead of starting a local head"
    ),
    topology: Optional[str] = typer.Option(None, help="fused (default) or split"),
    replicas: Optional[str] = typer.Option(None, help="ingress replicas: a number or 'auto'"),
    haproxy: Optional[bool] = typer.Option(
        None, "--haproxy/--no-haproxy", help="Ray Serve's HAProxy ingress"
    ),
    backend: Optional[str] = BackendOpt,
    redis_url: Optional[str] = RedisOpt,
    timeout_s: float = typer.Option(300.0, help="how long to wait for readiness"),
) -> None:
    """Start the Serve application (HTTP on 127.0.0.1:8000 by default)."""
    from serving import server

    args = _overrides(
        server={
            "host": host,
            "port": port,
            "grpc_port": grpc_port,
            "topology": topology,
            "ingress_replicas": (replicas if replicas in (None, "auto") else int(replicas)),
            "haproxy": haproxy,
        },
    ) | _state(backend, redis_url)
    settings = load_settings(args)
    problems = server.preflight(settings)
    if problems:  # a dependency down: say which, before starting anything
        for line in problems:
            console.print(line, style="red", markup=False, highlight=False)
        raise typer.Exit(1)
    _announce_admin_token(settings)
    with console.status("starting Ray and the Serve application..."):
        if address is None:
            try:
                server.start_head(settings)
            except server.RayStartError as exc:
                console.print(str(exc), style="red", markup=False)  # Ray's own words
                raise typer.Exit(1) from None
        url = server.deploy(settings, args, address)
        server.wait_ready(url, timeout_s)
    console.print(
        f"[green]reengage is ready[/] at {url}  (topology={settings.server.topology}, "
        f"features={settings.features.backend}, bandit={settings.bandit.backend}, "
        f"haproxy={settings.server.haproxy})"
    )
    if detach:
        return
    console.print("Ctrl-C (or SIGTERM) stops it, draining first.")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM drains as Ctrl-C does
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        with console.status("draining: in-flight requests finish, the decision log is flushed..."):
            took = server.stop(address)
        console.print(f"stopped in {took.get('total_s', 0):.1f} s")


def _announce_admin_token(settings: Any) -> None:
    """Secure by default: a first start writes the admin token the CLI and demo then read."""
    from serving.errors import DependencyUnavailable
    from serving.security import ensure_admin_token

    try:
        path, created = ensure_admin_token(settings)
    except (
        DependencyUnavailable
    ) as exc:  # the tokens live in the shared state (Redis with --state redis)
        console.print(f"cannot start: {exc.message}", style="red", markup=False)
        raise typer.Exit(1) from None
    if created:
        console.print(
            f"created an admin token (every route group) in {path} (mode 0600); "
            "send it as 'Authorization: Bearer <token>'",
            highlight=False,
        )
    elif path.exists():
        console.print(f"admin token: {path}", highlight=False)


def _client_token() -> Optional[str]:
    """REENGAGE_TOKEN, else the admin token a first `reengage serve` wrote."""
    from serving.security import client_token

    return client_token(load_settings({}).auth)


@app.command()
def stop(
    address: Optional[str] = typer.Option(None, help="the Ray cluster to stop Serve on"),
) -> None:
    """Shut the Serve application down (and the local Ray head `serve` started)."""
    from serving import server

    with console.status("draining: in-flight requests finish, the decision log is flushed..."):
        took = server.stop(address)
    if took.pop("running", 1) == 0 and not took.get("ray_processes"):
        console.print(
            "nothing to stop: no reengage application or Ray head is running", highlight=False
        )
        return
    console.print(
        "stopped  ("
        + ", ".join(
            f"{k.removesuffix('_s')} {v:.1f} s" if k.endswith("_s") else f"{k} {v:g}"
            for k, v in took.items()
        )
        + ")"
    )


@app.command()
def bundle(out: Path = typer.Argument(..., help="the zip to write, e.g. reengage.zip")) -> None:
    """Zip the model repository, Feast registry and LLM checkpoint for a cluster: name the
    zip as runtime_env.working_dir in deploy/serve.yaml, with server.artifacts: working_dir
    (docs/cluster.md). `reengage serve --address` ships them itself."""
    from serving.deployments.artifacts import pack

    path = pack(load_settings({}), out)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command()
def demo(
    url: str = typer.Option("http://127.0.0.1:8000", help="the running application"),
    ids: int = typer.Option(5, help="how many customers to score"),
) -> None:
    """Send real requests to a running server and print the answers."""
    from serving.demo import run_demo

    run_demo(url, ids, console, token=_client_token())


@app.command()
def loadtest(
    host: str = typer.Option("http://127.0.0.1:8000", help="the running application"),
    users: int = typer.Option(8, help="concurrent locust users"),
    spawn_rate: float = typer.Option(8.0, help="users started per second"),
    run_time_s: int = typer.Option(30, help="duration"),
    scenario: str = typer.Option("score", help="score, v2, feedback, reengage or mixed"),
    out_dir: Optional[str] = typer.Option(
        None,
        help="where locust's CSVs and HTML report go "
        "(default: <data_dir>/loadtests/<scenario>-<UTC time>)",
    ),
    slo_p99_ms: Optional[float] = typer.Option(
        None, help="fail (exit 1) when p99 latency, overall or of any endpoint, exceeds this (ms)"
    ),
    slo_failure_rate: Optional[float] = typer.Option(
        None,
        help="fail (exit 1) when the failure rate, overall "
        "or of any endpoint, exceeds this (0.01 = 1 %)",
    ),
) -> None:
    """Run the locust load test headless against a running server; SLOs make it pass or fail."""
    from datetime import datetime, timezone
    from pathlib import Path

    from loadtests.run import endpoint_table, run_loadtest, slo_violations

    out = (
        Path(out_dir)
        if out_dir
        else load_settings({}).data_dir
        / "loadtests"
        / (f"{scenario}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
    )
    out.mkdir(parents=True, exist_ok=True)
    stats = run_loadtest(
        host,
        users=users,
        spawn_rate=spawn_rate,
        run_time_s=run_time_s,
        scenario=scenario,
        csv_prefix=str(out / scenario),
        console=console,
        token=_client_token(),
        html=str(out / "report.html"),
    )
    console.print(endpoint_table(stats))
    for err in stats["errors"][:10]:
        console.print(f"  {err['occurrences']:,} x {err['name']}: {err['error']}", markup=False)
    console.print(
        f"CSVs: {out / scenario}_*.csv   HTML report: {stats['html'] or '(not written)'}",
        markup=False,
    )
    if slo_p99_ms is None and slo_failure_rate is None:
        return
    missed = slo_violations(stats, p99_ms=slo_p99_ms, failure_rate=slo_failure_rate)
    if missed:
        console.print("[red]SLO missed:[/] " + "; ".join(missed))
        raise typer.Exit(1)
    console.print(f"[green]SLO met[/] (p99 <= {slo_p99_ms} ms, failure rate <= {slo_failure_rate})")


@app.command()
def ope(
    candidate: str = typer.Option(
        "thompson", help="uniform, arm:<name>, thompson, linucb, lin_ts or greedy"
    ),
    backend: Optional[str] = typer.Option(None, help="decision log backend: embedded or redis"),
    redis_url: Optional[str] = RedisOpt,
    train_share: float = typer.Option(
        0.5, help="share of the log (oldest first) that learning candidates train on"
    ),
    confidence: float = typer.Option(0.95, help="confidence level of the intervals"),
    missing_reward: str = typer.Option("drop", help="decisions without a reward: drop, or zero"),
) -> None:
    """Off-policy evaluation (IPS, SNIPS, doubly robust) from the decision log."""
    from serving.bandit.ope import run_ope

    run_ope(
        load_settings(_overrides(bandit={"backend": backend, "redis_url": redis_url})),
        candidate,
        console=console,
        train_share=train_share,
        confidence=confidence,
        missing_reward=cast(Literal["drop", "zero"], missing_reward),
    )


if __name__ == "__main__":  # pragma: no cover
    app()
