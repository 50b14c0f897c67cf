"""Locust scenarios for reengage: v1 scoring, feedback, re-engagement, KServe v2 infer.

Run it headless, one scenario at a time (see ``loadtests/scenarios.py``)::

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 \\
        -u 16 -r 16 -t 60s --batch-size 1000 --id-max 100000 ScoreUser

or through ``loadtests.run.run_loadtest`` / ``reengage loadtest``. Every knob is a
locust argument with an environment variable beside it (``REENGAGE_LOAD_*``). Users
are FastHttpUser (geventhttpclient) with no think time by default: a closed loop
measuring throughput. Request bodies are built with orjson; the v2 body is built once
per process from the model's own metadata, as raw binary tensors.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
from locust import FastHttpUser, events, task
from locust.env import Environment

JSON = {"Content-Type": "application/json"}
HEADER_LENGTH = "Inference-Header-Content-Length"

DEFAULTS: dict[str, Any] = {
    "batch_size": 100,
    "id_min": 1,
    "id_max": 100_000,
    "feedback_share": 0.2,
    "v2_model": "churn",
    "v2_rows": 100,
    "think_ms": 0.0,
    "token": None,
}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("reengage")
    group.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS["batch_size"],
        env_var="REENGAGE_LOAD_BATCH_SIZE",
        help="customer ids per /v1/score request (1 to 10,000)",
    )
    group.add_argument(
        "--id-min",
        type=int,
        default=DEFAULTS["id_min"],
        env_var="REENGAGE_LOAD_ID_MIN",
        help="smallest customer id to draw",
    )
    group.add_argument(
        "--id-max",
        type=int,
        default=DEFAULTS["id_max"],
        env_var="REENGAGE_LOAD_ID_MAX",
        help="largest customer id to draw (ids outside the data answer found: false)",
    )
    group.add_argument(
        "--feedback-share",
        type=float,
        default=DEFAULTS["feedback_share"],
        env_var="REENGAGE_LOAD_FEEDBACK_SHARE",
        help="share of decisions that get a reward",
    )
    group.add_argument(
        "--v2-model",
        default=DEFAULTS["v2_model"],
        env_var="REENGAGE_LOAD_V2_MODEL",
        help="model for the KServe v2 infer scenario",
    )
    group.add_argument(
        "--v2-rows",
        type=int,
        default=DEFAULTS["v2_rows"],
        env_var="REENGAGE_LOAD_V2_ROWS",
        help="rows per v2 infer request (fills each -1 dimension)",
    )
    group.add_argument(
        "--think-ms",
        type=float,
        default=DEFAULTS["think_ms"],
        env_var="REENGAGE_LOAD_THINK_MS",
        help="pause between a user's requests (0: closed loop)",
    )
    group.add_argument(
        "--token",
        default=DEFAULTS["token"],
        env_var="REENGAGE_LOAD_TOKEN",
        help="bearer token sent on every request (feedback needs one by default); "
        "prefer the environment variable: a command line is visible to every user",
    )


def option(env: Environment, name: str) -> Any:
    """A reengage option; defaults when locust runs as a library without a parser."""
    parsed = getattr(env, "parsed_options", None)
    return getattr(parsed, name, DEFAULTS[name]) if parsed is not None else DEFAULTS[name]


def describe(resp: Any) -> str:
    """A failed answer in one line: status and the start of the body, or the network error."""
    if resp.status_code == 0:
        return f"no answer: {getattr(resp, 'error', None)!r}"
    return f"{resp.status_code}: {(resp.text or '')[:200]}"


def auth_headers(env: Environment) -> dict[str, str]:
    token = option(env, "token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def draw_ids(env: Environment, k: int) -> list[int]:
    """``k`` distinct ids from the configured range (fewer if the range is smaller)."""
    lo, hi = option(env, "id_min"), option(env, "id_max")
    return random.sample(range(lo, hi + 1), min(k, hi - lo + 1))


class BaseUser(FastHttpUser):
    """Shared plumbing; ``abstract`` keeps locust from running it."""

    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    def wait_time(self) -> float:
        return option(self.environment, "think_ms") / 1000.0

    def on_start(self) -> None:
        self.json_headers = {**JSON, **auth_headers(self.environment)}

    def post_json(
        self, path: str, doc: dict[str, Any], name: str | None = None
    ) -> dict[str, Any] | None:
        """POST and parse; a non-200 or unparsable answer is a locust failure (None)."""
        with self.client.post(
            path,
            data=orjson.dumps(doc),
            headers=self.json_headers,
            name=name or path,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(describe(resp))
                return None
            try:
                return orjson.loads(resp.content)
            except orjson.JSONDecodeError:
                resp.failure("answer is not JSON")
                return None

    def score(self) -> dict[str, Any] | None:
        ids = draw_ids(self.environment, option(self.environment, "batch_size"))
        doc = self.post_json("/v1/score", {"customer_ids": ids})
        if doc is not None and doc.get("customer_ids") != ids:
            events.request.fire(
                request_type="CHECK",
                name="/v1/score ids in order",
                response_time=0,
                response_length=0,
                exception=AssertionError("ids out of order"),
                context={},
            )
            return None
        return doc


class ScoreUser(BaseUser):
    """Batch scoring: the main load."""

    weight = 10

    @task
    def score_batch(self) -> None:
        self.score()


class FeedbackUser(BaseUser):
    """Score, then reward a share of the decisions taken, as a CRM would later."""

    weight = 2

    @task
    def score_then_reward(self) -> None:
        doc = self.score()
        if doc is None:
            return
        decisions = [d for d in doc.get("decision_id", []) if d is not None]
        share = option(self.environment, "feedback_share")
        for decision_id in random.sample(decisions, int(round(len(decisions) * share))):
            self.post_json(
                "/v1/feedback", {"decision_id": decision_id, "reward": float(random.random() < 0.3)}
            )


class ReengageUser(BaseUser):
    """One customer through the models and the LLM writer: slow, low weight."""

    weight = 1

    @task
    def reengage_one(self) -> None:
        (customer_id,) = draw_ids(self.environment, 1)
        doc = self.post_json("/v1/reengage", {"customer_id": customer_id})
        if doc is not None and "customer_id" not in doc:
            events.request.fire(
                request_type="CHECK",
                name="/v1/reengage body",
                response_time=0,
                response_length=0,
                exception=AssertionError("no customer_id"),
                context={},
            )


_V2_BODIES: dict[tuple[str, int], tuple[bytes, dict[str, str]]] = {}

_NUMPY = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


def v2_body(metadata: dict[str, Any], rows: int, seed: int = 0) -> tuple[bytes, dict[str, str]]:
    """A binary-extension infer body for every input in ``metadata`` (-1 dims = ``rows``),
    asking for every output in binary: what ``tritonclient.http`` sends."""
    rng = np.random.default_rng(seed)
    inputs, raws = [], []
    for spec in metadata["inputs"]:
        shape = [rows if d == -1 else d for d in spec["shape"]]
        dtype = _NUMPY.get(spec["datatype"])
        if dtype is None:
            raise ValueError(
                f"input {spec['name']}: datatype {spec['datatype']} not supported by this scenario"
            )
        array = (
            rng.normal(size=shape).astype(dtype)
            if np.dtype(dtype).kind == "f"
            else rng.integers(0, 2 if dtype is np.bool_ else 100, size=shape).astype(dtype)
        )
        raw = array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        inputs.append(
            {
                "name": spec["name"],
                "shape": shape,
                "datatype": spec["datatype"],
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        raws.append(raw)
    head = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    return head + b"".join(raws), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


class V2InferUser(BaseUser):
    """KServe v2 infer with binary tensors, body built once from the model's metadata."""

    weight = 3

    def on_start(self) -> None:
        super().on_start()
        model, rows = option(self.environment, "v2_model"), option(self.environment, "v2_rows")
        self.path = f"/v2/models/{model}/infer"
        key = (model, rows)
        if key not in _V2_BODIES:
            with self.client.get(
                f"/v2/models/{model}",
                name="/v2/models/[model]",
                headers=auth_headers(self.environment),
                catch_response=True,
            ) as resp:
                if resp.status_code != 200:
                    resp.failure(f"metadata: {resp.status_code}")
                    self.stop()
                    return
                _V2_BODIES[key] = v2_body(orjson.loads(resp.content), rows)
        body, headers = _V2_BODIES[key]
        self.body, self.headers = body, {**headers, **auth_headers(self.environment)}

    @task
    def infer(self) -> None:
        with self.client.post(
            self.path,
            data=self.body,
            headers=self.headers,
            name="/v2/models/[model]/infer",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(describe(resp))
            elif resp.headers.get(HEADER_LENGTH) is None:
                resp.failure("asked for binary outputs, got no Inference-Header-Content-Length")
