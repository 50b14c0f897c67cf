"""Two processes (as two Serve replicas) racing rewards, and contacts, into one shared state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from serving.settings import BanditSettings
from tests.bandit.conftest import logged_batches, logged_contacts, stored_contacts

T0 = time.time()  # real time: retention trims decisions older than 30 days

CHILD = """
import json, sys
import numpy as np
from serving.bandit.router import BanditRouter
from serving.errors import Conflict
from serving.settings import BanditSettings
args = json.loads(sys.argv[1])
router = BanditRouter(BanditSettings(**args["settings"]))
ok = 0
for did in args["ids"]:  # one reward per call, so the two processes interleave
    try:
        router.feedback_sync(did, float(int(did.rsplit("-", 1)[1]) % 2), now=args["now"])
        ok += 1
    except Conflict:
        pass
print(ok)
"""


def race(router: Any, settings: dict[str, Any]) -> list[int]:
    x = np.random.default_rng(0).random((200, len(router.context_names))).astype(np.float32)
    d = router.decide_sync(
        np.arange(200), x, eligible=np.ones(200, bool), model_versions={}, now=T0
    )
    router.flush()  # the other processes look the decisions up in the store
    ids = list(d.decision_id)
    payloads = [
        json.dumps({"settings": settings, "ids": order, "now": T0 + 1})
        for order in (ids, ids[::-1])
    ]
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, p], stdout=subprocess.PIPE, text=True)
        for p in payloads
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return [int(o.strip()) for o in outs]


def check(router: Any, oks: list[int]) -> None:
    assert sum(oks) == 200  # every id rewarded exactly once across both processes
    router.sync(force=True)
    np.testing.assert_allclose(router.stats[:, 0].sum(), 200)  # no lost update
    np.testing.assert_allclose(router.stats[:, 1].sum(), 100)


def test_embedded_state_is_shared_by_processes(embedded_router: Any, tmp_path: Any) -> None:
    settings = {"state_path": str(tmp_path), "holdout_share": 0.0, "contact_cap": 0}
    router = embedded_router(**settings)
    check(router, race(router, settings))


def test_redis_state_is_shared_by_processes(redis_router: Any, redis_url: str) -> None:
    settings = {"backend": "redis", "redis_url": redis_url, "holdout_share": 0.0, "contact_cap": 0}
    router = redis_router(**settings)
    check(router, race(router, settings))


DECIDER = """
import asyncio, json, sys
import numpy as np
from serving.bandit.router import BanditRouter
from serving.settings import BanditSettings
router = BanditRouter(BanditSettings(**json.loads(sys.argv[1])))

async def client():  # every client decides for the same ten customers, again and again
    for _ in range(10):
        await router.decide(
            np.arange(10), np.zeros((10, 2), np.float32), eligible=np.ones(10, bool),
            model_versions={},
        )

async def main():
    await asyncio.gather(*(client() for _ in range(4)))  # concurrent reservations: group commits
    await router.aclose()

asyncio.run(main())
"""


def contend(settings: dict[str, Any]) -> None:
    """Two processes x four concurrent clients x ten batches over the same ten customers."""
    payload = json.dumps(settings)
    procs = [subprocess.Popen([sys.executable, "-c", DECIDER, payload]) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    bandit = BanditSettings(**settings)
    contacts = logged_contacts(
        logged_batches(bandit).values(), bandit.arms.index(bandit.control_arm)
    )
    assert contacts == {c: 2 for c in range(10)}  # 80 tries per customer: cap reached, never passed
    assert stored_contacts(bandit) == contacts


CAPS: dict[str, Any] = {
    "policy": "uniform",
    "epsilon": 1.0,
    "holdout_share": 0.0,
    "contact_cap": 2,
    "arms": ["a", "b", "no_contact"],
}


def test_embedded_caps_are_exact_across_processes(tmp_path: Any) -> None:
    contend({**CAPS, "state_path": str(tmp_path)})


def test_redis_caps_are_exact_across_processes(redis_url: str) -> None:
    contend({**CAPS, "backend": "redis", "redis_url": redis_url})
