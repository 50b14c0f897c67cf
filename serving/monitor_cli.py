"""``reengage monitor`` and ``reengage card``: the running server's drift and segment
figures as a table (``--plot FILE.png``: each model's score histogram against its
reference and its most drifting features), and a version's model card.

``monitor`` calls ``GET /v1/monitor`` (admin group) with the token a client on this
machine sends (``REENGAGE_TOKEN``, else the admin token under the data directory);
``card`` reads ``card.md`` from the model repository the build wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from serving.settings import load_settings

console = Console()
TOP_FEATURES = 8


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
    app.command("card")(card)


def monitor(
    window_s: Optional[int] = typer.Option(
        None, "--window-s", help="the last N seconds (default monitor.window_s)"
    ),
    since: Optional[str] = typer.Option(
        None, help="from this ISO time to now, instead of --window-s"
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="also draw the score histograms and top drifting features here (PNG)"
    ),
    url: Optional[str] = typer.Option(
        None, "--url", help="the server (default http://<server.host>:<server.port>)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the server's JSON answer"),
) -> None:
    """Drift per model version (PSI against the build's reference), actions, contact rates by
    segment."""
    params = {k: v for k, v in (("window_s", window_s), ("since", since)) if v is not None}
    answer = _get("/v1/monitor", url, params)
    if as_json:
        console.print_json(json.dumps(answer))
    else:
        print_report(answer, console)
    if plot is not None:
        draw(answer, plot)
        console.print(f"plot written to {plot}")


def card(
    model: str = typer.Argument(..., help="model name, e.g. churn"),
    version: Optional[str] = typer.Argument(None, help="version (default: the newest with a card)"),
    raw: bool = typer.Option(False, "--raw", help="print the Markdown source"),
) -> None:
    """Print a version's model card (written by `reengage build`)."""
    repo = load_settings({}).models.repo_path / model
    if version is None:
        found = sorted(
            (int(p.parent.name) for p in repo.glob("*/card.md") if p.parent.name.isdigit()),
            reverse=True,
        )
        if not found:
            console.print(f"[red]no model card under {repo}[/red] (run `reengage build`)")
            raise typer.Exit(1)
        version = str(found[0])
    path = repo / version / "card.md"
    if not path.is_file():
        console.print(f"[red]{model} version {version} has no model card ({path})[/red]")
        raise typer.Exit(1)
    text = path.read_text()
    if raw:
        print(text, end="")
    else:
        console.print(Markdown(text))


def _get(path: str, url: str | None, params: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from serving.security import bearer_headers, client_token

    settings = load_settings({})
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        r = httpx.get(
            f"{base}{path}",
            params=params,
            headers=bearer_headers(client_token(settings.auth)),
            timeout=60,
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {base}: {exc}[/red] (is `reengage serve` running?)")
        raise typer.Exit(2) from None
    answer = r.json()
    if r.status_code >= 400:
        err = answer.get("error", {})
        console.print(
            f"[red]{r.status_code} {err.get('type')}: {err.get('message')}[/red]"
            + (f" (field {err['field']})" if err.get("field") else "")
        )
        raise typer.Exit(1)
    return answer


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def print_report(a: dict[str, Any], out: Console) -> None:
    colour = {
        "ok": "green",
        "drift": "red",
        "insufficient_data": "yellow",
        "no_reference": "yellow",
    }
    w = a["window"]
    out.print(
        f"[bold]{w['start']} .. {w['end']}[/bold]  rows {w['rows']:,}  replicas {a['replicas']}  "
        f"status [{colour[a['status']]}]{a['status']}[/]  "
        f"(PSI > {a['thresholds']['psi']} is drift; "
        f"below {a['thresholds']['min_rows']:,} rows: insufficient_data)"
    )
    for lost in a["lost"]:
        out.print(
            f"[yellow]replica {lost['replica']}: {lost['reason']}"
            + (f" after {lost['after']}" if lost["after"] else "")
            + f", {lost['dropped_rows']} rows dropped[/]"
        )
    t = Table(title="Drift by model version (top features by PSI)")
    for col in (
        "model",
        "version",
        "rows",
        "status",
        "score PSI",
        "feature",
        "PSI",
        "missing",
        "out of range",
    ):
        t.add_column(col, justify="right" if col not in ("model", "status", "feature") else "left")
    for model, entry in a["models"].items():
        for v in entry["versions"]:
            top = sorted(v["features"], key=lambda f: -(f["psi"] or 0))[:3] or [None]
            for i, f in enumerate(top):
                head = (
                    [
                        model,
                        v["version"],
                        f"{v['rows']:,}",
                        f"[{colour[v['status']]}]{v['status']}[/]",
                        _num(v["score"]["psi"]),
                    ]
                    if i == 0
                    else ["", "", "", "", ""]
                )
                tail = (
                    [
                        f["feature"],
                        ("[red]" if f["drift"] else "") + _num(f["psi"]),
                        _num(f["missing_rate"], ".1%"),
                        _num(f["out_of_range_rate"], ".1%"),
                    ]
                    if f
                    else ["-", "-", "-", "-"]
                )
                t.add_row(*head, *tail)
    out.print(t)
    acts = a["actions"]
    out.print(
        "actions: "
        + ", ".join(f"{k} {v:.1%}" for k, v in acts["share"].items())
        + f"  (min propensity {_num(acts['min_propensity'], '.4f')})"
    )
    s = Table(title="Segments (contact rate ratio below 0.8 fails the four-fifths rule)")
    for col in ("segment", "value", "rows", "mean churn", "contact rate", "holdout", "ratio"):
        s.add_column(col, justify="left" if col in ("segment", "value") else "right")
    for seg in a["segments"]:
        ratio = seg["contact_rate_ratio"]
        flag = "[red]" if ratio is not None and ratio < 0.8 else ""
        s.add_row(
            seg["feature"],
            seg["value"],
            f"{seg['rows']:,}",
            _num(seg["mean_churn"]),
            _num(seg["contact_rate"], ".1%"),
            _num(seg["holdout_share"], ".1%"),
            flag + _num(ratio, ".2f"),
        )
    out.print(s)


def draw(a: dict[str, Any], path: Path) -> None:
    """One row per model: score shares per reference bin (reference vs window), and the
    features with the highest PSI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = [(m, e) for m, e in a["models"].items() if e["score"].get("bins")]
    fig, axes = plt.subplots(
        max(len(models), 1), 2, figsize=(13, 4.2 * max(len(models), 1)), squeeze=False
    )
    for row, (model, e) in zip(axes, models):
        bins = e["score"]["bins"]
        ref, cur = (
            np.asarray(bins["reference"][2:-1], float),
            np.asarray(bins["current"][2:-1], float),
        )
        edges = bins["edges"]
        x = np.arange(len(ref))
        row[0].bar(
            x - 0.2,
            ref / max(ref.sum(), 1),
            0.4,
            label=f"reference ({int(ref.sum()):,} rows)",
            color="#8c8c8c",
        )
        row[0].bar(
            x + 0.2,
            cur / max(cur.sum(), 1),
            0.4,
            label=f"window ({int(cur.sum()):,} rows)",
            color="#d62728",
        )
        row[0].set_xticks(
            x,
            [f"{edges[i]:.2f}-{edges[i + 1]:.2f}" for i in range(len(ref))],
            rotation=45,
            fontsize=7,
        )
        row[0].set_title(f"{model} v{e['version']}: score, PSI {_num(e['score']['psi'])}")
        row[0].set_ylabel("share of rows")
        row[0].legend(fontsize=8)
        top = sorted(e["features"], key=lambda f: -(f["psi"] or 0))[:TOP_FEATURES][::-1]
        values = [f["psi"] or 0 for f in top]
        row[1].barh(
            [f["feature"] for f in top],
            values,
            color=["#d62728" if f["drift"] else "#1f77b4" for f in top],
        )
        row[1].axvline(
            a["thresholds"]["psi"],
            color="black",
            linestyle="--",
            linewidth=1,
            label="drift threshold",
        )
        row[1].set_title(f"{model} v{e['version']}: top drifting features (PSI)")
        row[1].legend(fontsize=8)
    if not models:
        axes[0][0].text(0.5, 0.5, "no model version with a reference in this window", ha="center")
    fig.suptitle(
        f"{a['window']['start']} .. {a['window']['end']}: {a['window']['rows']:,} rows, "
        f"status {a['status']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
