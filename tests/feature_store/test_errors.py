"""The feature store's errors cross Ray handles and reach callers as a 503 naming the store.

(That feature_store never imports serving is an import-linter contract: pyproject.toml.)
"""

from __future__ import annotations

import pickle

from feature_store.errors import OnlineStoreUnavailable


def test_online_store_unavailable_pickles_and_names_the_store() -> None:
    exc = OnlineStoreUnavailable("feature store (redis at h:1,db=0)", "ConnectionError: refused")
    clone = pickle.loads(pickle.dumps(exc))
    assert (
        type(clone) is OnlineStoreUnavailable
        and clone.store == exc.store
        and clone.reason == exc.reason
    )
    assert str(clone) == "feature store (redis at h:1,db=0) unavailable: ConnectionError: refused"


def test_the_server_answers_it_as_a_503_naming_the_store() -> None:
    """Same status and body as the server's own DependencyUnavailable with that message
    (tests/serving has no copy)."""
    from serving.errors import DependencyUnavailable, status_and_body

    exc = OnlineStoreUnavailable("feature store (embedded LMDB at /x)", "MDB_PANIC")
    assert status_and_body(exc) == (503, DependencyUnavailable(str(exc)).to_body())
    assert status_and_body(exc)[1]["error"] == {
        "type": "dependency_unavailable",
        "field": None,
        "message": "feature store (embedded LMDB at /x) unavailable: MDB_PANIC",
    }
