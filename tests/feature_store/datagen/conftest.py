"""One small generation the generator's tests share, anchored at a fixed day."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from feature_store.datagen.generate import CustomerData, generate

ANCHOR = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="package")
def anchor() -> datetime:
    return ANCHOR


@pytest.fixture(scope="package")
def data() -> CustomerData:
    return generate(4000, seed=11, snapshots=3, anchor=ANCHOR)
