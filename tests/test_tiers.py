"""The test tiers (tests/conftest.py): every slow module listed exists, and the marks land."""

from __future__ import annotations

import pytest

from tests.conftest import SLOW_MODULES, TESTS


def test_every_slow_module_listed_exists() -> None:
    gone = sorted(m for m in SLOW_MODULES if not (TESTS / m).is_file())
    assert not gone, f"tests/conftest.py SLOW_MODULES names modules that do not exist: {gone}"


def test_this_module_is_in_the_unit_tier(request: pytest.FixtureRequest) -> None:
    marks = {m.name for m in request.node.iter_markers()}
    assert "unit" in marks and not marks & {"e2e", "slow"}
