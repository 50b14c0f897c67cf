"""A Feast online store built for batch reads: one packed record per entity and view.

Feast's own Redis store keeps one hash per entity with a protobuf per feature and reads
with one HMGET per entity; that caps reads near 4k entities/s. Here each (entity,
feature view) row is a single value, and all-float views decode N rows with one
``np.frombuffer``. Rows older than the view's TTL, or written under another schema, read
as not found, in Feast's ``online_read`` and the batch reader alike.

Modules, by concern:

- ``layout``: view layouts, key layout, timestamps
- ``codec``: records to bytes and back (vectorized decode, TTL and schema checks)
- ``kv``: the key-value interface (``KeyValueStore``) and what a batch read returns
- ``lmdb_store`` / ``redis_store``: the embedded and the Redis backend
- ``resp``: the Redis MGET of a batch read, built as a byte matrix
- ``feast_store``: the Feast adapter (``PackedOnlineStore`` and its config)
- ``materialize``: materialization without protos (``PackedComputeEngine``)

The yamls name ``feature_store.online_store.PackedOnlineStore`` and
``feature_store.online_store.PackedComputeEngine``: Feast imports this package and looks
up those names and their ``...Config`` classes here, hence the re-exports.
"""

from feature_store.online_store.feast_store import (
    PackedOnlineStore,
    PackedOnlineStoreConfig,
    kv_store_for,
)
from feature_store.online_store.materialize import (
    PackedComputeEngine,
    PackedComputeEngineConfig,
    materialize_packed,
)

__all__ = [
    "PackedComputeEngine",
    "PackedComputeEngineConfig",
    "PackedOnlineStore",
    "PackedOnlineStoreConfig",
    "kv_store_for",
    "materialize_packed",
]
