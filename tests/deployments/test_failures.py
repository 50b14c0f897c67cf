"""Handle calls fail as our errors naming the component, and the caller's deadline holds."""

from __future__ import annotations

import asyncio

import pytest

from serving.deployments.failures import _result
from serving.errors import Timeout, status_and_body


def test_a_call_past_the_callers_deadline_is_a_504_naming_the_component() -> None:
    async def frozen() -> None:
        await asyncio.sleep(30)

    async def main() -> float:
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(Timeout) as err:
            await _result("email writer", frozen(), 0.2)
        assert status_and_body(err.value)[0] == 504 and "email writer" in err.value.message
        return asyncio.get_running_loop().time() - t0

    assert asyncio.run(main()) < 1.0


def test_no_deadline_waits_for_the_answer() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "ok"

    assert asyncio.run(_result("email writer", slow(), None)) == "ok"
