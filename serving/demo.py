"""`reengage demo`: real requests against a running server, answers printed."""

from __future__ import annotations

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from serving.security import bearer_headers


def run_demo(url: str, ids: int, console: Console, token: str | None = None) -> None:
    """``token``: sent on every call (feedback needs one by default: the admin token a first
    ``reengage serve`` wrote, or ``REENGAGE_TOKEN``)."""
    with httpx.Client(base_url=url, timeout=60.0, headers=bearer_headers(token)) as client:
        customer_ids = list(range(1, ids + 1)) + [999_999_999]  # the last one is unknown
        score = client.post("/v1/score", json={"customer_ids": customer_ids})
        score.raise_for_status()
        body = score.json()
        table = Table(
            "customer",
            "found",
            "churn",
            "engagement",
            "action",
            "propensity",
            "feature age s",
            title=f"POST /v1/score  (models {body['model_versions']})",
        )
        for i, cid in enumerate(body["customer_ids"]):
            table.add_row(
                str(cid),
                str(body["found"][i]),
                _f(body["churn_probability"][i]),
                _f(body["engagement_probability"][i]),
                str(body["action"][i]),
                _f(body["propensity"][i]),
                _f(body["feature_age_s"][i], 0),
            )
        console.print(table)
        _feedback(client, body, console)
        _reengage(client, customer_ids[0], console)
        bad = client.post("/v1/score", json={"customer_ids": ["seven"]})
        console.print(f"bad input -> HTTP {bad.status_code} {bad.json()}")
    _triton(url, console)


def _feedback(client: httpx.Client, body: dict, console: Console) -> None:
    decision = next((d for d in body["decision_id"] if d), None)  # all null without the bandit
    if decision is None:
        return
    r = client.post("/v1/feedback", json={"decision_id": decision, "reward": 1.0})
    console.print(f"POST /v1/feedback -> HTTP {r.status_code} {r.json()}")
    if r.status_code in (401, 403):
        console.print(
            "  feedback needs a token with the feedback role: set REENGAGE_TOKEN, or run the demo "
            "where `reengage serve` wrote <data_dir>/auth/admin.token"
        )


DEMO_ACTION = "winback_email"  # what the demo forces when the bandit decides not to contact


def _reengage(client: httpx.Client, customer_id: int, console: Console) -> None:
    """The bandit's choice for one customer, with its email; when the bandit picks no contact
    (no email is written then), the same customer again with an action forced, and says so."""
    r = client.post("/v1/reengage", json={"customer_id": customer_id})
    console.print(f"POST /v1/reengage {{customer_id: {customer_id}}} -> HTTP {r.status_code}")
    if r.status_code != 200:
        console.print(f"  {r.text}", markup=False)
        return
    data = r.json()
    if data["llm"].get("written") is False or not data.get("body"):
        console.print(
            f"  the bandit chose action={data['action']} (reason: {data.get('reason')}): "
            f"no email is written for it. Forcing action={DEMO_ACTION} to show the writer "
            "(the answer says reason=forced and carries no decision id):",
            markup=False,
        )
        forced = client.post(
            "/v1/reengage", json={"customer_id": customer_id, "action": DEMO_ACTION}
        )
        console.print(
            f"POST /v1/reengage {{customer_id: {customer_id}, action: {DEMO_ACTION}}} -> "
            f"HTTP {forced.status_code}"
        )
        if forced.status_code != 200:
            console.print(f"  {forced.text}", markup=False)
            return
        data = forced.json()
    console.print(f"  action={data['action']}  reason={data.get('reason')}", markup=False)
    console.print(f"  subject: {data['subject']!r}", markup=False)
    console.print(f"  body: {(data['body'] or '')[:600]!r}", markup=False)
    console.print(f"  llm: {data['llm']}", markup=False)


def _triton(url: str, console: Console) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url.split("://", 1)[1])
    meta = client.get_model_metadata("churn")
    n_features = int(meta["inputs"][0]["shape"][1])
    x = np.random.default_rng(0).random((3, n_features), dtype=np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer("churn", [inp])
    console.print(
        f"tritonclient.http infer churn v{meta['versions'][-1]} on 3 random rows -> "
        f"{result.as_numpy('probability').ravel().tolist()}"
    )


def _f(value: float | None, digits: int = 4) -> str:
    return "null" if value is None else f"{value:.{digits}f}"
