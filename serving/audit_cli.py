"""``reengage audit`` (read the admin audit log) and ``reengage token`` (manage tokens).

``audit`` reads this machine's audit log (``auth.audit_log``). ``token`` writes the
shared state (sqlite in the data directory, or Redis with ``state: redis``), so it runs
wherever that is reachable and needs no running server; every replica picks up a change
within ``auth.reload_interval_s``.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from serving.settings import load_settings

token_app = typer.Typer(
    help="Bearer tokens: create (prints it once), list, revoke, hash.", no_args_is_help=True
)
console = Console()

_RESULT_STYLE = {"ok": "green", "error": "red", "denied": "yellow"}


def register(app: typer.Typer) -> None:
    """Add ``audit`` and ``token`` to the main CLI."""
    app.command("audit")(audit)
    app.add_typer(token_app, name="token")


def _since(text: str | None) -> float | None:
    """``90s``, ``15m``, ``2h``, ``7d`` ago, or an ISO time (UTC unless it says otherwise)."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        return time.time() - float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"expected e.g. 30m, 2h, 7d or an ISO time, got {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def filter_entries(
    entries: Any,
    *,
    model: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    result: str | None = None,
    since: float | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """Entries matching every given filter (``action`` matches a prefix: ``repository``), the
    last ``last``."""
    out = [
        e
        for e in entries
        if (model is None or e.get("model") == model)
        and (action is None or str(e.get("action", "")).startswith(action))
        and (actor is None or e.get("actor") == actor)
        and (result is None or e.get("result") == result)
        and (since is None or float(e.get("ts", 0)) >= since)
    ]
    return out[-last:] if last else out


def audit(
    model: Optional[str] = typer.Option(None, help="only this model"),
    action: Optional[str] = typer.Option(
        None, help="only actions starting with this (e.g. repository, rollout.promote)"
    ),
    actor: Optional[str] = typer.Option(None, help="only this token name"),
    result: Optional[str] = typer.Option(None, help="ok, error or denied"),
    since: Optional[str] = typer.Option(
        None, help="only newer entries: 30m, 2h, 7d or an ISO time"
    ),
    last: int = typer.Option(50, help="show the last N matching entries (0: all)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
    path: Optional[str] = typer.Option(
        None, help="the audit log (default: auth.audit_log, <data_dir>/audit.jsonl)"
    ),
) -> None:
    """Read the audit log of admin actions (who, what, which model and version, result)."""
    from pathlib import Path

    from serving.audit import RESULTS, AuditLog

    if result is not None and result not in RESULTS:
        raise typer.BadParameter(f"result must be one of {RESULTS}")
    settings = load_settings({})
    log_path = Path(path) if path else settings.auth.audit_log
    assert log_path is not None
    entries = filter_entries(
        AuditLog(log_path, settings.auth.audit_rotation).read(),
        model=model,
        action=action,
        actor=actor,
        result=result,
        since=_since(since),
        last=last or None,
    )
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry) + "\n")
        return
    if not log_path.exists():
        console.print(f"no audit log yet at {log_path}")
        return
    table = Table(
        "time (UTC)",
        "actor",
        "action",
        "model",
        "version",
        "result",
        "message",
        title=f"audit log {log_path} ({len(entries)} shown)",
    )
    for e in entries:
        style = _RESULT_STYLE.get(str(e.get("result")), "")
        details = e.get("details") or {}
        message = str(e.get("message") or "") + (f" {json.dumps(details)}" if details else "")
        table.add_row(
            str(e.get("time", "")),
            str(e.get("actor", "")),
            str(e.get("action", "")),
            str(e.get("model") or ""),
            str(e.get("version") or ""),
            f"[{style}]{e.get('result', '')}[/]" if style else str(e.get("result", "")),
            message,
        )
    console.print(table)


def _roles(roles: list[str]) -> list[str]:
    from serving.security import GROUPS

    chosen = list(GROUPS) if "all" in roles else roles
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown or not chosen:
        raise typer.BadParameter(f"roles are route groups: {list(GROUPS)} (or 'all'); got {roles}")
    return chosen


def _local_actor() -> str:
    return f"local:{getpass.getuser()}"


def _book(settings: Any) -> Any:
    from serving.security import TokenBook
    from serving.shared_state import open_shared_state

    return TokenBook(open_shared_state(settings), settings.auth.tokens)


@token_app.command("create")
def token_create(
    name: str = typer.Argument(
        ..., help="who holds it (the audit log names it): letters, digits, _ . @ -"
    ),
    role: list[str] = typer.Option(
        ..., "--role", "-r", help="a route group it may call (repeat), or 'all'"
    ),
) -> None:
    """Create a token (or replace the one of this name) and print it: the only time it is shown."""
    from serving import audit as audit_mod

    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise typer.BadParameter("name: 1-64 of letters, digits, _ . @ -")
    roles = _roles(role)
    settings = load_settings({})
    book = _book(settings)
    try:
        token = book.create(name, roles)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        book.state.close()
    audit_mod.record(
        settings, "token.create", actor=_local_actor(), details={"name": name, "roles": roles}
    )
    console.print(
        f"token [bold]{name}[/] with roles {roles} (stored as its hash in the {book.state.name}); "
        "it is shown once, keep it:",
        highlight=False,
    )
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list() -> None:
    """Token names, roles and state (the shared state's and the settings'; never a token or
    hash)."""
    settings = load_settings({})
    book = _book(settings)
    try:
        rows = book.rows()
    finally:
        book.state.close()
    table = Table("name", "roles", "created", "source", "state")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["roles"]), r["created"], r["source"], r["state"])
    console.print(table)
    console.print(
        "groups needing a token: "
        + ", ".join(g for g, mode in settings.auth.groups.model_dump().items() if mode == "token")
    )


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="the token's name")) -> None:
    """Revoke a token: every replica refuses it within auth.reload_interval_s. A token from the
    settings (a Secret) is refused too, until the settings carry a new hash for its name."""
    from serving import audit as audit_mod

    settings = load_settings({})
    book = _book(settings)
    try:
        revoked = book.revoke(name)
    finally:
        book.state.close()
    if not revoked:
        console.print(f"no valid token named {name!r} in the {book.state.name} or the settings")
        raise typer.Exit(1)
    audit_mod.record(settings, "token.revoke", actor=_local_actor(), details={"name": name})
    console.print(f"revoked {name}")


@token_app.command("hash")
def token_hash() -> None:
    """Read a token on stdin, print its SHA-256: for auth.tokens in serve.yaml or
    REENGAGE_AUTH__TOKENS."""
    from serving.security import hash_token

    token = sys.stdin.readline().strip()
    if not token:
        raise typer.BadParameter("give the token on stdin")
    sys.stdout.write(hash_token(token) + "\n")
