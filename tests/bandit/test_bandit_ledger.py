"""The embedded contact ledger: exact caps with repeats, a cap change, and the sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from serving.bandit.state import BatchRecord, Reservation
from serving.bandit.state.ledger import ContactLedger


def reservation(ids: list[int], now: float, cap: int = 2, window_s: float = 100.0) -> Reservation:
    n = len(ids)
    rec = BatchRecord(
        "b" * 16,
        now,
        "thompson",
        "v",
        {},
        ("a", "no"),
        ("x",),
        np.array(ids, np.int64),
        np.zeros((n, 1), np.float32),
        np.zeros(n, np.int16),
        np.full(n, 0.5),
        np.zeros(n, np.uint8),
    )
    return Reservation(rec, np.arange(n), window_s, cap, control=1)


def test_repeats_and_earlier_contacts_share_the_cap(tmp_path: Path) -> None:
    ledger = ContactLedger(tmp_path / "c")
    assert ledger.reserve(reservation([1, 2], now=10.0)).tolist() == [True, True]
    # customer 1 twice more and customer 3 three times: 1 has one slot left, 3 has two
    allowed = ledger.reserve(reservation([1, 3, 1, 3, 3], now=20.0))
    assert allowed.tolist() == [True, True, False, True, False]
    assert ledger.counts() == {1: 2, 2: 1, 3: 2}
    assert ledger.reserve(reservation([1], now=111.0)).tolist() == [True]  # 10.0 left the window


def test_a_lower_cap_keeps_the_newest_contacts(tmp_path: Path) -> None:
    ledger = ContactLedger(tmp_path / "c")
    for t in (1.0, 2.0, 3.0):
        ledger.reserve(reservation([7], now=t, cap=3))
    assert ledger.reserve(reservation([7], now=4.0, cap=1)).tolist() == [False]
    assert ledger.reserve(reservation([7], now=4.0, cap=4)).tolist() == [True]


def test_sweep_drops_customers_with_no_live_contact_and_resumes(tmp_path: Path) -> None:
    ledger = ContactLedger(tmp_path / "c")
    ledger.reserve(reservation(list(range(10)), now=10.0, cap=3))
    ledger.reserve(reservation([3, 5], now=50.0, cap=3))
    deleted, done = ledger.sweep(dead_before=20.0, limit=4)  # in chunks, as the committer does
    while not done:
        more, done = ledger.sweep(dead_before=20.0, limit=4)
        deleted += more
    assert deleted == 8 and ledger.counts() == {3: 2, 5: 2}


def test_the_cap_is_exact_across_processes(tmp_path: Path) -> None:
    child = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parents[2])!r})\n"
        "from tests.bandit.test_bandit_ledger import reservation\n"
        "from serving.bandit.state.ledger import ContactLedger\n"
        f"l = ContactLedger(__import__('pathlib').Path({str(tmp_path / 'c')!r}))\n"
        "print(sum(int(l.reserve(reservation([i % 5], now=1.0, cap=3))[0]) for i in range(200)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    granted = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(granted) == 15  # 5 customers x cap 3, whoever won each race
    assert ContactLedger(tmp_path / "c").counts() == {i: 3 for i in range(5)}


def test_sweep_keeps_a_customer_contacted_after_the_chunk_was_read(
    tmp_path: Path, monkeypatch
) -> None:
    """The chunk is judged outside the writer lock; a reservation made before the deletes
    (another replica's, here made while the chunk is judged) must keep its customer."""
    import serving.bandit.state.ledger as ledger_module

    ledger = ContactLedger(tmp_path / "c")
    ledger.reserve(reservation([1, 2, 3], now=10.0, cap=3))
    judge, calls = ledger_module._newest, []

    def judged_then_contacted(values: list[bytes]) -> np.ndarray:
        out = judge(values)
        if not calls:  # the read step's verdict: all three dead; then customer 2 is contacted
            ledger.reserve(reservation([2], now=90.0, cap=3))
        calls.append(len(values))
        return out

    monkeypatch.setattr(ledger_module, "_newest", judged_then_contacted)
    deleted, done = ledger.sweep(dead_before=50.0)
    assert done and deleted == 2 and ledger.counts() == {2: 2}


def test_sweep_judges_values_written_under_another_cap(tmp_path: Path) -> None:
    """Values of different widths (a contact_cap change) are judged one by one."""
    ledger = ContactLedger(tmp_path / "c")
    ledger.reserve(reservation([1], now=10.0, cap=2))
    ledger.reserve(reservation([2], now=60.0, cap=3))
    ledger.reserve(reservation([3], now=30.0, cap=3))
    deleted, done = ledger.sweep(dead_before=40.0)
    assert done and deleted == 2 and ledger.counts() == {2: 1}
