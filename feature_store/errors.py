"""The feature store's own errors, so that ``feature_store`` never imports ``serving``.

The server maps :class:`OnlineStoreUnavailable` to a 503 ``dependency_unavailable``
(``serving.errors.status_and_body``). Errors cross Ray handles between replicas, so all
their state goes through ``Exception.__init__`` and default pickling rebuilds them.
"""

from __future__ import annotations

from feature_store.redact import redact


class OnlineStoreUnavailable(Exception):
    """The online store is down, unreachable or too slow; the message names which one.

    ``store`` says which store (``"feature store (redis at host:6379,db=0)"``), ``reason``
    what went wrong; ``str()`` is ``"<store> unavailable: <reason>"``. Both are redacted
    (:func:`feature_store.redact.redact`): a store named by its URL or Feast connection
    string carries no password into an answer, a log or a pickle.
    """

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(redact(store), redact(reason))

    @property
    def store(self) -> str:
        return str(self.args[0])

    @property
    def reason(self) -> str:
        return str(self.args[1])

    def __str__(self) -> str:
        return f"{self.store} unavailable: {self.reason}"
