"""/v1/reengage over HTTP on a running server: latency, emails/s and generated tokens/s.

Why its own module: `reengage bench llm --url` measures the whole email path through a
server already up, beside the engines measured in process (:mod:`loadtests.bench.llm`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


async def _reengage_load(
    url: str, ids: list[int], concurrency: int
) -> tuple[list[float], int, int]:
    import httpx

    lat: list[float] = []
    tokens = errors = 0
    queue = list(ids)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens, errors
        while queue:
            cid = queue.pop()
            t = time.perf_counter()
            r = await client.post(
                "/v1/reengage", json={"customer_id": cid, "action": "winback_email"}
            )
            lat.append(time.perf_counter() - t)
            if r.status_code == 200:
                tokens += int(r.json()["llm"].get("completion_tokens") or 0)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await client.post(
            "/v1/reengage", json={"customer_id": 1, "action": "winback_email"}
        )  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        total = time.perf_counter() - start
    lat.append(total)  # the wall time travels as the last item
    return lat, tokens, errors


def run_reengage_bench(
    url: str, *, requests: int = 48, concurrency: int = 4, console: Console | None = None
) -> dict[str, Any]:
    """/v1/reengage over HTTP on a running server: latency and generated tokens/s."""
    console = console or Console()
    out: dict[str, Any] = {}
    for c in sorted({1, concurrency}):
        with console.status(f"/v1/reengage, {requests} customers, {c} concurrent..."):
            lat, tokens, errors = asyncio.run(_reengage_load(url, list(range(2, requests + 2)), c))
        wall = lat.pop()
        out[f"c={c}"] = {
            "requests": len(lat),
            "errors": errors,
            "p50_ms": 1e3 * statistics.median(lat),
            "p99_ms": 1e3 * float(np.percentile(lat, 99)),
            "tokens_per_s": tokens / wall,
            "emails_per_s": len(lat) / wall,
        }
    table = Table(
        "concurrency",
        "emails/s",
        "tokens/s",
        "p50 ms",
        "p99 ms",
        "errors",
        title="POST /v1/reengage (HTTP)",
    )
    for k, v in out.items():
        table.add_row(
            k,
            f"{v['emails_per_s']:.1f}",
            f"{v['tokens_per_s']:.0f}",
            f"{v['p50_ms']:.0f}",
            f"{v['p99_ms']:.0f}",
            str(v["errors"]),
        )
    console.print(table)
    return out
