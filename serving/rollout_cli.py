"""``reengage rollout start|status|promote|rollback|unload|load``: model version rollouts.

Each command calls the running server's admin API (``/v1/admin/rollout/...``) with the
bearer token a client on this machine sends (``REENGAGE_TOKEN``, else the admin token
a first ``reengage serve`` wrote under the data directory). The server validates,
audits and spreads the change to every replica; the answer says how long that took.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from serving.settings import load_settings

rollout_app = typer.Typer(
    help="Roll model versions out: canary, shadow, promote (gated by evidence), rollback.",
    no_args_is_help=True,
)
console = Console()

UrlOpt = typer.Option(None, "--url", help="the server (default http://<server.host>:<server.port>)")
JsonOpt = typer.Option(False, "--json", help="print the server's JSON answer")


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")


def _call(
    method: str,
    path: str,
    url: str | None,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    import httpx

    from serving.security import bearer_headers, client_token

    settings = load_settings({})
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    headers = bearer_headers(client_token(settings.auth))
    try:
        r = httpx.request(
            method, f"{base}{path}", json=body, params=params, headers=headers, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {base}: {exc}[/red] (is `reengage serve` running?)")
        raise typer.Exit(2) from None
    try:
        answer = r.json()
    except ValueError:
        answer = {"error": {"type": "http", "message": r.text[:500], "field": None}}
    if r.status_code >= 400:
        err = answer.get("error", {}) if isinstance(answer, dict) else {}
        console.print(
            f"[red]{r.status_code} {err.get('type', '')}[/red]: {err.get('message', answer)}"
        )
        raise typer.Exit(1)
    return answer


def _versions_weights(items: list[str]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        version, _, weight = item.partition(":")
        if not version.isdigit() or (weight and not weight.replace(".", "", 1).isdigit()):
            raise typer.BadParameter(f"expected VERSION:PERCENT, got {item!r}")
        out.append({"version": version, "weight": float(weight or 10)})
    return out


def _print_change(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(answer, default=str))
        return
    policy = answer.get("policy") or {}
    cands = (
        ", ".join(f"v{c['version']} {c['weight']:g}%" for c in policy.get("candidates") or [])
        or "none"
    )
    shadow = policy.get("shadow")
    console.print(
        f"[green]{answer['model']}[/green]: default v{policy.get('default')}, candidates {cands}"
        + (f", shadow v{shadow['version']} {shadow['percent']:g}%" if shadow else "")
    )
    console.print(
        f"in force on {len(answer.get('acknowledged_after_s', {}))} replica(s); "
        f"slowest acknowledged after {answer.get('propagation_s', 0):.2f} s "
        f"(bound {answer.get('activation_delay_s', 0):.2f} s)"
        + (
            f"; [yellow]late: {answer['late_replicas']}[/yellow]"
            if answer.get("late_replicas")
            else ""
        )
    )
    if answer.get("forced"):
        console.print(
            "[yellow]forced: promoted without evidence of non-inferiority (audited)[/yellow]"
        )


@rollout_app.command("start")
def start(
    model: str = typer.Argument(..., help="model name, e.g. churn"),
    candidate: list[str] = typer.Option(
        [], "--candidate", "-c", help="VERSION:PERCENT (repeatable), e.g. 4:10"
    ),
    default: Optional[str] = typer.Option(None, help="default version (default: the current one)"),
    shadow: Optional[str] = typer.Option(
        None, help="VERSION[:PERCENT] scored off the answer (default 100%)"
    ),
    salt: Optional[str] = typer.Option(
        None,
        help="assignment salt, any string (default: the running rollout's, else a new random one)",
    ),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Canary weighted candidates and/or a shadow; sticky per customer."""
    body: dict[str, Any] = {
        "default": default,
        "candidates": _versions_weights(candidate),
        "salt": salt,
    }
    if shadow:
        version, _, percent = shadow.partition(":")
        body["shadow"] = {"version": version, "percent": float(percent or 100)}
    _print_change(_call("POST", f"/v1/admin/rollout/{model}", url, body), as_json)


@rollout_app.command("status")
def status(
    model: str = typer.Argument(..., help="model name"),
    confidence: float = typer.Option(0.95, help="of the evidence's confidence sequence"),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Policy, replicas, shadow against default, and each version's value with its interval."""
    s = _call("GET", f"/v1/admin/rollout/{model}", url, params={"confidence": confidence})
    if as_json:
        console.print_json(json.dumps(s, default=str))
        return
    policy = s.get("policy")
    console.print(
        f"[bold]{model}[/bold] generation {s['generation']}, control mode {s.get('control_mode')}; "
        f"loaded versions {s['versions']}"
        + (f"; unloaded {s['excluded']}" if s.get("excluded") else "")
    )
    console.print(
        f"policy: {json.dumps(policy) if policy else 'none (the newest version serves everyone)'}"
    )
    for version, cause in (s.get("failures") or {}).items():
        console.print(f"[red]version {version} cannot serve: {cause}[/red]")
    replicas = Table(title="replicas")
    for col in ("replica", "generation", "ok", "versions", "cause"):
        replicas.add_column(col)
    for name, r in s.get("replicas", {}).items():
        replicas.add_row(
            name,
            str(r.get("generation")),
            str(r.get("ok")),
            ",".join(r.get("versions") or []),
            r.get("cause") or "",
        )
    console.print(replicas)
    shadow = s.get("shadow")
    if shadow:
        console.print(
            f"shadow vs default: {shadow['rows']} rows, mean diff {_f(shadow['mean_diff'])}, "
            f"mean |diff| {_f(shadow['mean_abs_diff'])}, "
            f"p95 |diff| <= {_f(shadow['p95_abs_diff_at_most'])}, "
            f"max |diff| {_f(shadow['max_abs_diff'])}; "
            f"latency shadow {_f(shadow['shadow_latency_ms'])} ms "
            f"vs default {_f(shadow['default_latency_ms'])} ms per call"
        )
    _print_evidence(s.get("evidence") or {})


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _print_evidence(ev: dict[str, Any]) -> None:
    if not ev.get("available"):
        console.print(f"evidence: {ev.get('reason', 'none')}")
        return
    table = Table(
        title="value per version (mean reward of resolved policy decisions; "
        "no reward by the window's end counts 0)"
    )
    for col in ("version", "n", "value", "std error"):
        table.add_column(col)
    for version, e in (ev.get("values") or {}).items():
        table.add_row(version, str(e["n"]), _f(e["value"]), _f(e["std_error"]))
    console.print(table)
    for cand, c in (ev.get("comparisons") or {}).items():
        d = c.get("difference")
        console.print(
            f"candidate v{cand} - default v{c['default']}: "
            + (
                f"{_f(d['value'])} [{_f(d['low'])}, {_f(d['high'])}] "
                f"({c['confidence']:.0%}, always valid)"
                if d
                else "n/a"
            )
            + f" -> {c['verdict']} (margin {c['margin']:g}"
            + (
                f"; about {c['more_per_arm']} more decisions per arm needed)"
                if c.get("more_per_arm")
                else ")"
            )
        )


@rollout_app.command("promote")
def promote(
    model: str = typer.Argument(..., help="model name"),
    version: Optional[str] = typer.Option(None, help="the candidate (default: the only one)"),
    force: bool = typer.Option(
        False, "--force", help="promote without evidence of non-inferiority (audited)"
    ),
    confidence: float = typer.Option(0.95, help="of the evidence's confidence sequence"),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make the candidate the default once the evidence shows it non-inferior (lower bound
    above -margin)."""
    answer = _call(
        "POST",
        f"/v1/admin/rollout/{model}/promote",
        url,
        {"version": version, "force": force, "confidence": confidence},
    )
    _print_change(answer, as_json)
    if not as_json and isinstance(answer.get("evidence"), dict) and "verdict" in answer["evidence"]:
        console.print(f"evidence: {answer['evidence']['verdict']}")


@rollout_app.command("rollback")
def rollback(
    model: str = typer.Argument(..., help="model name"),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """One call: candidates and shadow stop (after a promotion: the previous default returns)."""
    _print_change(_call("POST", f"/v1/admin/rollout/{model}/rollback", url, {}), as_json)


@rollout_app.command("unload")
def unload(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Unload one version on every replica (refused while it takes traffic)."""
    _print_change(
        _call("POST", f"/v1/admin/models/{model}/versions/{version}/unload", url, {}), as_json
    )


@rollout_app.command("load")
def load(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Load a version unloaded with ``rollout unload``."""
    _print_change(
        _call("POST", f"/v1/admin/models/{model}/versions/{version}/load", url, {}), as_json
    )
