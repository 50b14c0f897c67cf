"""Open, apply and materialize the Feast repository from Python (what the CLI does).

`feast apply` is Feast's ``apply_total`` (wrapped in :mod:`feature_store.feast_compat`):
it ``chdir``s into the repo and imports ``definitions.py`` as a top-level module; we
call it the same way and restore the working directory, so the build, tests and the
bare ``feast`` CLI share one path. Takes the caller's settings through
:class:`StoreSettings` and raises :class:`feature_store.errors.OnlineStoreUnavailable`:
the feature store never imports the server.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig
from redis.exceptions import ConnectionError as RedisConnectionError

from feature_store.errors import OnlineStoreUnavailable
from feature_store.feast_compat import apply_repo
from feature_store.online_store import materialize_packed

REDIS_ENV = "REENGAGE_FEAST_REDIS"
# The views `materialize` loads, in this order.
VIEWS: tuple[str, ...] = ("customer_profile", "customer_activity", "customer_contact")


class StoreSettings(Protocol):
    """Where the repository is and which yaml to use; the server's ``FeatureSettings`` fits.

    A protocol, so that the feature store takes the caller's settings without importing them.
    """

    @property
    def repo_path(self) -> Path:
        """The Feast repository: the folder of feature_store.yaml and definitions.py."""

    @property
    def yaml_file(self) -> Path:
        """feature_store.yaml (embedded) or feature_store.redis.yaml; only its name is used."""

    @property
    def redis_url(self) -> str:
        """Fills ``${REENGAGE_FEAST_REDIS}`` in the yaml (ignored by the embedded one)."""


def feast_redis_connection(url: str) -> str:
    """``redis://[:pw@]host:port/db`` -> Feast's ``host:port,db=N[,password=..][,ssl=true]``."""
    u = urlparse(url)
    parts = [
        f"{u.hostname or '127.0.0.1'}:{u.port or 6379}",
        f"db={(u.path or '/0').strip('/') or '0'}",
    ]
    if u.password:
        parts.append(f"password={u.password}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def load_config(settings: StoreSettings, repo_path: Path | None = None) -> RepoConfig:
    """The RepoConfig of ``settings.yaml_file``; the Redis address comes from settings."""
    repo = (repo_path or settings.repo_path).resolve()
    text = (repo / settings.yaml_file.name).read_text()
    text = text.replace("${" + REDIS_ENV + "}", feast_redis_connection(settings.redis_url))
    config = RepoConfig(**yaml.safe_load(os.path.expandvars(text)))
    config.repo_path = repo
    return config


def load_store(settings: StoreSettings) -> FeatureStore:
    """A FeatureStore on ``settings.repo_path`` with the backend's yaml (embedded or redis)."""
    repo = settings.repo_path.resolve()
    return FeatureStore(repo_path=str(repo), config=load_config(settings, repo))


def apply(store: FeatureStore) -> str:
    """Exactly `feast apply` on the store's repo; returns Feast's printed diff."""
    repo = Path(store.repo_path).resolve()
    (repo / "data").mkdir(exist_ok=True)
    cwd, out = os.getcwd(), io.StringIO()
    # Feast imports definitions.py by its bare name: this repo's copy must win over any
    # other repo applied earlier in this process (tests apply temporary copies).
    sys.path.insert(0, str(repo))
    sys.modules.pop("definitions", None)
    try:
        with contextlib.redirect_stdout(out):
            apply_repo(store.config, repo)
    except (ConnectionError, RedisConnectionError) as exc:
        raise OnlineStoreUnavailable(
            _store_label(store), f"unreachable during feast apply: {exc}"
        ) from exc
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))
        sys.modules.pop("definitions", None)
    store.refresh_registry()
    return out.getvalue()


def materialize(
    store: FeatureStore,
    end: datetime | None = None,
    progress: Any | None = None,
    views: tuple[str, ...] = VIEWS,
) -> dict[str, float]:
    """Load the newest row per customer and view (up to ``end``, default now) online.

    The window starts at the epoch, not at ``end - ttl``: TTLs are enforced at read time,
    and the contact view has none. ``progress`` is an optional ``rich.progress.Progress``:
    one task advanced per view. Returns seconds per view.
    """
    import time

    end = end or datetime.now(timezone.utc)
    start = datetime(1970, 1, 2, tzinfo=timezone.utc)
    task = progress.add_task("materialize", total=len(views)) if progress is not None else None
    timings: dict[str, float] = {}
    for name in views:
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()), _quiet_tqdm():
                if _packed(store):  # same registry bookkeeping, no per-value protobufs
                    materialize_packed(
                        store, start, end + timedelta(seconds=1), feature_views=[name]
                    )
                else:
                    store.materialize(
                        start_date=start, end_date=end + timedelta(seconds=1), feature_views=[name]
                    )
        except (ConnectionError, RedisConnectionError) as exc:
            raise OnlineStoreUnavailable(
                _store_label(store), f"unreachable while materializing {name}: {exc}"
            ) from exc
        timings[name] = time.perf_counter() - t0
        if progress is not None:
            progress.update(task, advance=1, description=f"materialize {name}")
    return timings


def _packed(store: FeatureStore) -> bool:
    return getattr(store.config.online_store, "type", "").endswith("PackedOnlineStore")


def _store_label(store: FeatureStore) -> str:
    """How errors name the online store: its yaml ``type`` (ours, or one of Feast's)."""
    return f"online store ({getattr(store.config.online_store, 'type', 'unknown')})"


@contextlib.contextmanager
def _quiet_tqdm() -> Any:
    """Feast draws tqdm bars on stderr; the caller shows its own rich progress instead."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def forget(store: FeatureStore, customer_ids: Any) -> dict[str, int]:
    """Delete every online record of these customers, in every view (an erasure); records
    deleted per view. Their offline rows stay with the source; the suppression export
    (``online_store.suppression``) keeps materialization from writing them back."""
    import numpy as np

    from feature_store.online_store import kv_store_for
    from feature_store.online_store.layout import build_keys, key_prefix, view_prefix

    ids = np.asarray(customer_ids, dtype=np.int64).reshape(-1)
    kv, prefix = kv_store_for(store.config), key_prefix(store.config)
    try:
        return {
            v.name: kv.delete(build_keys(view_prefix(prefix, v.name), ids))
            for v in store.list_feature_views()
        }
    except (ConnectionError, RedisConnectionError) as exc:
        raise OnlineStoreUnavailable(
            _store_label(store), f"unreachable while erasing: {exc}"
        ) from exc


def suppression_path(store: FeatureStore) -> Path | None:
    """Where this repo's online store reads the suppression export (None: switched off)."""
    name = getattr(store.config.online_store, "suppression_file", None)
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else Path(store.config.repo_path or os.getcwd()) / path


def export_suppression(
    store: FeatureStore, key_source: str, pseudonyms_hex: list[str]
) -> Path | None:
    """Write the suppressed customers' pseudonyms where materialization reads them
    (``key_source``: the key file's path or ``env:NAME``; never the key)."""
    from feature_store.online_store.suppression import save

    path = suppression_path(store)
    if path is not None:
        save(path, key_source, pseudonyms_hex)
    return path
