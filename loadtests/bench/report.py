"""What `reengage bench score` prints and draws from its points: the ratios to the
references at each point, a table per ids-per-request, and the PNG plot. Pure: the points
come from ``loadtests.bench.rounds`` (tests/loadtests/bench/test_rounds.py)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

LABELS = {
    "ours": "ours /v1/score",
    "hello": "hello-world Serve",
    "plain": "plain FastAPI",
    "ort2": "raw ORT 2 threads",
    "ort1": "raw ORT 1 thread",
}
RATIOS = ("ours_over_hello", "ours_over_plain", "ours_over_ort2")
MEDIAN_FIELDS = (
    "req_s",
    "pred_s",
    "p50_ms",
    "p99_ms",
    "app_p50_ms",
    "app_p99_ms",
    "wrk_cpu",
    "seconds",
)
SUM_FIELDS = ("requests", "ok", "errors", "app_requests")


def ratios(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (ids, concurrency) of ours: req/s over hello's and plain's, predictions/s over
    ORT 2 threads'.

    With rounds (``--rounds``), each round's ours is paired with the references of the same
    round, measured right after it, so a drift of the machine between rounds cancels; the
    ratio is the median of the rounds' ratios, and ``<ratio>_range`` their least and most."""
    index = {(p["target"], p["ids"], p["concurrency"], p.get("round")): p for p in points}

    def over(
        mine: dict[str, Any], key: tuple[str, int, int | None, int | None], field: str
    ) -> float | None:
        ref = index.get(key)  # no ratio where either side completed nothing
        return mine[field] / ref[field] if mine[field] and ref and ref[field] else None

    per_point: dict[tuple[int, int], list[dict[str, float | None]]] = {}
    for p in points:
        if p["target"] == "ours":
            n, c, r = p["ids"], p["concurrency"], p.get("round")
            per_point.setdefault((n, c), []).append(
                {
                    "ours_over_hello": over(p, ("hello", n, c, r), "req_s"),
                    "ours_over_plain": over(p, ("plain", n, c, r), "req_s"),
                    "ours_over_ort2": over(p, ("ort2", n, None, None), "pred_s"),
                }
            )
    out = []
    for (n, c), rounds in per_point.items():
        row: dict[str, Any] = {"ids": n, "concurrency": c}
        for field in RATIOS:
            got = [r[field] for r in rounds if r[field] is not None]
            row[field] = statistics.median(got) if got else None
            if len(rounds) > 1:
                row[f"{field}_range"] = [min(got), max(got)] if got else None
        out.append(row)
    return out


def aggregate(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (target, ids, concurrency): a point measured in several rounds becomes
    the median of each figure over its rounds (requests and errors: their sums)."""
    groups: dict[tuple[str, int, int | None], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["target"], p["ids"], p["concurrency"]), []).append(p)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        merged = {k: v for k, v in group[0].items() if k != "round"}
        for key in MEDIAN_FIELDS:
            got = [p[key] for p in group if p.get(key) is not None]
            merged[key] = statistics.median(got) if got else None
        for key in SUM_FIELDS:
            if key in merged:
                merged[key] = sum(p.get(key) or 0 for p in group)
        merged["extended"] = any(p.get("extended") for p in group)
        merged["rounds"] = len(group)
        out.append(merged)
    return out


def _fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _ratio(row: dict[str, Any], field: str) -> str:
    """``0.85x``, and over rounds the rounds' least and most: ``0.85x (0.78-0.92)``."""
    spread = row.get(f"{field}_range")
    return _fmt(row.get(field), ".2f", "x") + (
        f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else ""
    )


def _in_app(point: dict[str, Any]) -> str:
    if point.get("app_p99_ms") is None:
        return "-"
    return f"{point['app_p50_ms']:.2f} / {point['app_p99_ms']:.2f}"


def print_tables(result: dict[str, Any], console: Console) -> None:
    """A table per ids-per-request; ratios on ours' rows. At least 175 columns wide (205 with
    rounds)."""
    width = (
        175 if result["meta"].get("rounds", 1) == 1 else 205
    )  # rounds: the ratios' ranges beside them
    if console.width < width:
        console = Console(width=width)
    points, meta = result["points"], result["meta"]
    by_key = {(p["target"], p["ids"], p["concurrency"]): p for p in points}
    rat = {(r["ids"], r["concurrency"]): r for r in result["ratios"]}
    for n in meta["ids"]:
        table = Table(
            "target",
            "c",
            "requests",
            "2xx/s",
            "predictions/s",
            "p50 ms",
            "p99 ms",
            "in-app p50 / p99",
            "errors",
            "wrk CPU",
            "ours ÷ hello",
            "ours ÷ plain",
            "ours ÷ ORT 2 thr",
            title=f"{n:,} ids per request ({meta['cores']} cores, {meta['seconds']:g} s a point"
            f"{_rounds(meta)})",
        )
        rows = [("ort2", None), ("ort1", None)]
        rows += [(t, c) for c in meta["concurrency"] for t in ("ours", "hello", "plain")]
        for target, c in rows:
            p = by_key.get((target, n, c))
            if p is None:
                continue
            r = rat.get((n, c), {}) if target == "ours" else {}
            codes = ",".join(sorted(p.get("status_codes") or {}))
            errors = (
                f"[red]{p['errors']}{f' ({codes})' if codes else ''}[/]" if p["errors"] else "0"
            )
            cpu = p.get("wrk_cpu")
            done = f"{p['requests']:,}" + ("*" if p.get("extended") else "")
            table.add_row(
                LABELS[target],
                "-" if c is None else str(c),
                done,
                _fmt(p["req_s"]),
                _fmt(p["pred_s"]),
                _fmt(p["p50_ms"], ".2f"),
                _fmt(p["p99_ms"], ".2f"),
                _in_app(p),
                errors,
                _fmt(None if cpu is None else 100 * cpu, ".0f", "%"),
                *(_ratio(r, field) for field in RATIOS),
                end_section=target == "ort1" or target == "plain",
            )
        console.print(table)
    console.print(
        "requests: answers in the window (ORT: calls); * measured again 4x longer, the first "
        "window having held one wave of requests at most. 2xx/s and predictions/s count good "
        "answers only; latency counts every answer. hello's predictions/s is its 2xx/s x ids "
        "(bodies of the same size, no work). in-app: the latency our replicas logged for the "
        "same window (request log, from our outermost middleware to the last byte handed to "
        "Serve); the rest of wrk's is Serve's ingress, HAProxy and the machine. wrk CPU: its CPU "
        "time over wall time, 100% = one core. ÷hello and ÷plain compare 2xx/s. errors: answers "
        ">= 300 (their codes) and socket errors; a sample body is in the JSON."
    )
    if meta.get("rounds", 1) > 1:
        console.print(
            "rounds: each HTTP figure is the median over the rounds (requests: their sum); a "
            "ratio is the median of the rounds' ratios, each round's ours against the references "
            "measured right beside it (least-most in brackets)."
        )


def _rounds(meta: dict[str, Any]) -> str:
    rounds = meta.get("rounds", 1)
    return f", median of {rounds} interleaved rounds" if rounds > 1 else ""


def plot_or_say(result: dict[str, Any], path: Path, console: Console) -> None:
    try:
        plot_results(result, path)
    except ImportError:
        console.print("[yellow]no plot: matplotlib is missing (pip install 'reengage[load]')[/]")
        return
    except Exception as exc:  # the JSON is written already: a plot problem must not lose the run
        console.print(f"[yellow]no plot: {exc!r}[/]")
        return
    console.print(f"plot: {path}")


def plot_results(result: dict[str, Any], path: Path) -> None:
    """Predictions/s (top) and p99 (bottom) against ids per request, a panel per concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, points = result["meta"], result["points"]
    conc = meta["concurrency"]
    fig, axes = plt.subplots(
        2, len(conc), figsize=(4.6 * len(conc), 8), sharex=True, sharey="row", squeeze=False
    )
    styles = {
        "ours": ("C0", "-", "o"),
        "hello": ("C1", "-", "s"),
        "plain": ("C2", "-", "^"),
        "ort2": ("C3", "--", "x"),
        "ort1": ("C7", ":", "x"),
    }
    for j, c in enumerate(conc):
        for target, (color, line, marker) in styles.items():
            pts = sorted(
                (p for p in points if p["target"] == target and p["concurrency"] in (c, None)),
                key=lambda p: p["ids"],
            )
            if not pts:
                continue
            for i, field in enumerate(("pred_s", "p99_ms")):
                xy = [(p["ids"], p[field]) for p in pts if p[field]]  # log scale: no zeros, no None
                if xy:
                    axes[i][j].plot(
                        [x for x, _ in xy],
                        [y for _, y in xy],
                        color=color,
                        linestyle=line,
                        marker=marker,
                        label=LABELS[target],
                    )
        axes[0][j].set_title(f"{c} connection{'s' if c > 1 else ''}")
        axes[1][j].set_xlabel("ids per request")
        for ax in axes[:, j]:
            ax.set_xscale("log")
            if ax.lines:  # log scale on an empty panel fails
                ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("predictions/s, 2xx only (hello: 2xx/s x ids)")
    axes[1][0].set_ylabel("p99 latency, ms (ORT: per call)")
    if axes[0][0].lines:
        axes[0][0].legend(fontsize=8)
    fig.suptitle(
        f"reengage bench score, {meta['date']}, {meta['cores']} cores, "
        f"{meta['seconds']:g} s a point"
        f"{_rounds(meta)}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
