"""`reengage demo`: real requests against a running server, answers printed."""

from __future__ import annotations

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table


def run_demo(url: str, ids: int, console: Console) -> None:
    with httpx.Client(base_url=url, timeout=60.0) as client:
        customer_ids = list(range(1, ids + 1)) + [999_999_999]  # the last one is unknown
        score = client.post("/v1/score", json={"customer_ids": customer_ids})
        score.raise_for_status()
        body = score.json()
        table = Table("customer", "found", "churn", "engagement", "action", "propensity", "feature age s",
                      title=f"POST /v1/score  (models {body['model_versions']})")
        for i, cid in enumerate(body["customer_ids"]):
            table.add_row(str(cid), str(body["found"][i]), _f(body["churn_probability"][i]),
                          _f(body["engagement_probability"][i]), str(body["action"][i]),
                          _f(body["propensity"][i]), _f(body["feature_age_s"][i], 0))
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


def _reengage(client: httpx.Client, customer_id: int, console: Console) -> None:
    r = client.post("/v1/reengage", json={"customer_id": customer_id})
    console.print(f"POST /v1/reengage -> HTTP {r.status_code}")
    if r.status_code == 200:
        data = r.json()
        console.print(f"  action={data['action']}  subject: {data['subject']!r}")
        console.print(f"  body: {(data['body'] or '')[:300]!r}")
        console.print(f"  llm: {data['llm']}")
    else:
        console.print(f"  {r.text}")


def _triton(url: str, console: Console) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url.split("://", 1)[1])
    meta = client.get_model_metadata("churn")
    n_features = int(meta["inputs"][0]["shape"][1])
    x = np.random.default_rng(0).random((3, n_features), dtype=np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer("churn", [inp])
    console.print(f"tritonclient.http infer churn v{meta['versions'][-1]} on 3 random rows -> "
                  f"{result.as_numpy('probability').ravel().tolist()}")


def _f(value: float | None, digits: int = 4) -> str:
    return "null" if value is None else f"{value:.{digits}f}"
