"""``reengage bench``: the benchmarks, a typer sub-app the CLI mounts as ``bench``.

The benchmark code lives here, beside the load tests, and never inside the server: the
CLI (``serving/cli.py``, the composition root) is the one module of ``serving`` that
imports it (an import-linter contract in pyproject.toml says so).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from serving.settings import load_settings

bench_app = typer.Typer(
    help="Benchmarks, each printed beside the limit it competes with.", no_args_is_help=True
)
console = Console()


@bench_app.command("score")
def bench_score(
    ids: str = typer.Option(
        "1,10,100,1000,10000", help="customer ids per request, comma-separated"
    ),
    concurrency: str = typer.Option("1,4,16", help="concurrent HTTP connections, comma-separated"),
    targets: str = typer.Option(
        "ours,hello,plain,ort",
        help="what to measure, comma-separated: ours (/v1/score), "
        "hello (hello-world Serve beside ours), plain (FastAPI on uvicorn, no Ray), "
        "ort (raw ONNX Runtime, 2 and 1 threads)",
    ),
    seconds: float = typer.Option(
        5.0, help="measured seconds per point (wrk rounds to whole seconds)"
    ),
    warmup: float = typer.Option(
        1.0, help="seconds of the same load before each HTTP point, not recorded (0: none)"
    ),
    rounds: int = typer.Option(
        3,
        help="measure each HTTP point this many times, the targets in turn; report "
        "medians, and each ratio as the median of the rounds' ratios",
    ),
    wrk_threads: int = typer.Option(
        1, help="wrk threads (its CPU use is reported: raise this if it nears 100%)"
    ),
    plain_ort_threads: int = typer.Option(
        0, help="ONNX Runtime threads in the plain FastAPI app (0: ORT's default)"
    ),
    topology: Optional[str] = typer.Option(None, help="fused or split"),
    replicas: Optional[int] = typer.Option(
        None, help="ingress replicas (hello-world gets as many)"
    ),
    haproxy: Optional[bool] = typer.Option(None, "--haproxy/--no-haproxy"),
    out: Optional[str] = typer.Option(
        None, help="results JSON (default docs/bench_score.json; the PNG goes beside it)"
    ),
    plot: bool = typer.Option(
        True, "--plot/--no-plot", help="also draw the PNG (needs matplotlib: the load extra)"
    ),
) -> None:
    """/v1/score beside hello-world Serve, plain FastAPI and raw ONNX Runtime, on wrk, in one
    run."""
    from pathlib import Path

    from loadtests.bench.score import BenchError, run_score_bench
    from serving.settings import project_root

    server = {
        k: v
        for k, v in {"topology": topology, "haproxy": haproxy, "ingress_replicas": replicas}.items()
        if v is not None
    }
    settings = load_settings({**({"server": server} if server else {}), "llm": {"enabled": False}})
    try:
        run_score_bench(
            settings,
            ids=_ints(ids),
            concurrency=_ints(concurrency),
            targets=[t.strip() for t in targets.split(",") if t.strip()],
            seconds=seconds,
            warmup=warmup,
            rounds=rounds,
            wrk_threads=wrk_threads,
            plain_ort_threads=plain_ort_threads,
            out_json=Path(out) if out else project_root() / "docs" / "bench_score.json",
            plot=plot,
            console=console,
        )
    except BenchError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


@bench_app.command("features")
def bench_features(
    redis_url: Optional[str] = typer.Option(
        None, help="Redis to benchmark (default: start a private redis-server)"
    ),
    customers: int = typer.Option(100_000, help="entities to materialize"),
) -> None:
    """Online feature reads per second, packed reader vs raw MGET vs Feast."""
    from loadtests.bench.features import run_feature_bench
    from loadtests.bench.redis_server import private_redis

    with private_redis(redis_url) as url:  # a wide table: 10 columns of figures side by side
        run_feature_bench(url, customers=customers, console=Console(width=max(console.width, 200)))


@bench_app.command("bandit")
def bench_bandit(
    redis_url: Optional[str] = typer.Option(None, help="also measure the Redis backend"),
) -> None:
    """Bandit decisions/s for 1,000 contexts a call, and the decision log's size per million."""
    from loadtests.bench.bandit import run_bandit_bench, run_log_size_bench
    from loadtests.bench.redis_server import private_redis

    with private_redis(redis_url) as url:
        run_bandit_bench(redis_url=url, console=console)
        run_log_size_bench(redis_url=url, console=console)


@bench_app.command("trees")
def bench_trees(
    model: str = typer.Option("churn", help="tree model in the repository"),
    version: Optional[str] = typer.Option(None, help="version (default: the newest)"),
    rounds: int = typer.Option(5, help="interleaved rounds per batch size"),
) -> None:
    """Tree runtimes on the holdout rows: ONNX Runtime vs lleaves (and tl2cgen if installed), on
    1 thread."""
    from loadtests.bench.trees import run_trees_bench

    run_trees_bench(load_settings({}), model=model, version=version, rounds=rounds, console=console)


@bench_app.command("explain")
def bench_explain(
    customers: int = typer.Option(1_000, help="customers per call"),
    top_k: int = typer.Option(5, help="contributions per customer and model"),
    rounds: int = typer.Option(5, help="interleaved rounds"),
) -> None:
    """Explanations per second (/v1/explain, /v1/score with explain) beside scoring, in-process."""
    from loadtests.bench.explain import run_explain_bench

    run_explain_bench(
        load_settings({}), customers=customers, top_k=top_k, rounds=rounds, console=console
    )


@bench_app.command("flood")
def bench_flood(
    url: Optional[str] = typer.Option(
        None, help="a running application (default: start one on a private Ray head)"
    ),
    seconds: float = typer.Option(30.0, help="seconds per quiet and per flood window"),
    rounds: int = typer.Option(3, help="flood windows (each between two quiet ones)"),
    score_connections: int = typer.Option(4, help="wrk connections on /v1/score"),
    flood_connections: int = typer.Option(16, help="wrk connections sending refused admin calls"),
    ids: int = typer.Option(10, help="customer ids per /v1/score request"),
    replicas: Optional[int] = typer.Option(None, help="ingress replicas (an app it starts)"),
    out: Optional[str] = typer.Option(None, help="write the results as JSON here"),
) -> None:
    """/v1/score p50/p99 in quiet windows and under a flood of refused admin calls, with the
    audit log's growth beside its rate-limit bound."""
    from pathlib import Path

    from loadtests.bench.flood import run_flood_bench

    if rounds < 1 or seconds < 1:
        raise typer.BadParameter("rounds and seconds must be at least 1")
    server = {"ingress_replicas": replicas} if replicas is not None else {}
    settings = load_settings({"server": server, "llm": {"enabled": False}})
    try:
        run_flood_bench(
            settings,
            url=url,
            seconds=seconds,
            rounds=rounds,
            score_connections=score_connections,
            flood_connections=flood_connections,
            ids=ids,
            out_json=Path(out) if out else None,
            console=console,
        )
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@bench_app.command("monitor")
def bench_monitor(
    calls: int = typer.Option(400, help="calls per case, size and round"),
    rounds: int = typer.Option(5, help="rounds"),
) -> None:
    """/v1/score with monitoring off and on at 1 and 1,000 ids, interleaved, in-process."""
    from loadtests.bench.monitor import run_monitor_bench

    run_monitor_bench(load_settings({}), calls=calls, rounds=rounds, console=console)


@bench_app.command("rollout")
def bench_rollout(
    decisions: str = typer.Option("10000,1000000", help="logged decisions, comma-separated"),
    rounds: int = typer.Option(5, help="looks per size (the first is the cold one)"),
    redis_url: Optional[str] = typer.Option(
        None, help="measure on this Redis instead of the embedded sqlite"
    ),
) -> None:
    """Rollout status and promote evidence latency against the decision log's size, in-process."""
    import json

    from loadtests.bench.rollout import run

    for n in _ints(decisions):
        console.print_json(json.dumps(run(n, rounds=rounds, redis_url=redis_url)))


@bench_app.command("consent")
def bench_consent() -> None:
    """The consent check's cost per /v1/score request at 1, 1,000 and 10,000 ids."""
    from loadtests.bench.consent import run

    for row in run():
        console.print(
            f"opted out {row['opted_out']:>9,}  ids {row['ids']:>6,}  "
            f"{row['share_opted_out']:>4.0%} among them: {row['us']:8.2f} us",
            highlight=False,
        )


@bench_app.command("llm")
def bench_llm(
    url: Optional[str] = typer.Option(
        None, help="also measure /v1/reengage on this running server"
    ),
    requests: int = typer.Option(32, help="emails per measurement"),
    concurrency: str = typer.Option(
        "1,8,32", help="comma-separated concurrent requests to measure at"
    ),
    backends: str = typer.Option(
        "vllm,transformers", help="engines to compare (vllm needs the vllm extra)"
    ),
) -> None:
    """Email writer engines on the same prompts: tokens/s, time to first token, p50/p99; then
    /v1/reengage over HTTP."""
    from loadtests.bench.llm import run_llm_bench

    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    run_llm_bench(
        load_settings({}).llm,
        console=console,
        requests=requests,
        concurrency=levels,
        backends=[b.strip() for b in backends.split(",") if b.strip()],
    )
    if url is not None:
        from loadtests.bench.reengage import run_reengage_bench

        run_reengage_bench(url, requests=requests, concurrency=max(levels), console=console)
