"""``reengage privacy erase|consent``: erasure and consent through the running server.

Like ``reengage rollout``, each command calls the server's API with the token a client on
this machine sends (``REENGAGE_TOKEN``, else the bootstrap admin token): the server
erases through the stores it holds open, audits the erasure and answers what it removed.
"""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from serving.rollout_cli import _call

privacy_app = typer.Typer(
    help="Personal data: erase a customer, record or read consent.", no_args_is_help=True
)
console = Console()

UrlOpt = typer.Option(None, "--url", help="the server (default http://<server.host>:<server.port>)")
JsonOpt = typer.Option(False, "--json", help="print the server's JSON answer")


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")


@privacy_app.command("erase")
def erase(
    customer_id: int = typer.Argument(..., min=0, help="the customer to erase"),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Erase a customer from every store; only a suppression entry (keyed pseudonym) stays."""
    answer = _call("DELETE", f"/v1/admin/customers/{customer_id}", url)
    if as_json:
        console.print_json(json.dumps(answer))
        return
    removed = answer["removed"]
    table = Table("store", "removed")
    table.add_row("online store (every view)", str(removed["online_store"]["records"]))
    log = removed["decision_log"]
    if log.get("available"):
        table.add_row("decision log rows", f"{log['rows']} ({log['rows_treatment']})")
        table.add_row("rewards", str(log["rewards"]))
        table.add_row("contact ledger", str(log["contact_ledger"]))
    else:
        table.add_row("decision log", log.get("reason") or "unavailable")
    table.add_row("consent record", "deleted" if removed["consent_record"] else "none")
    console.print(table)
    console.print("suppressed: the customer stays opted out and out of materialization")


@privacy_app.command("consent")
def consent(
    customer_id: int = typer.Argument(..., min=0),
    opt_out: Optional[bool] = typer.Option(
        None, "--opt-out/--opt-in", help="record a choice; omit to read"
    ),
    channel: str = typer.Option("all", help="email | all"),
    url: Optional[str] = UrlOpt,
) -> None:
    """Read a customer's consent, or record an opt-out (``--opt-out``) or opt-in."""
    if opt_out is None:
        answer = _call("GET", f"/v1/consent/{customer_id}", url)
    else:
        answer = _call(
            "POST",
            "/v1/consent",
            url,
            {"customer_id": customer_id, "opted_out": opt_out, "channel": channel},
        )
    console.print_json(json.dumps(answer))
