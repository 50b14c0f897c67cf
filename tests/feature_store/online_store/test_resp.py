"""The MGET of a batch read: byte for byte what redis-py would send, answered like
execute_command."""

from __future__ import annotations

import numpy as np
import redis
from redis.connection import Connection

from feature_store.online_store.layout import build_keys
from feature_store.online_store.resp import mget_command, send_packed


def test_mget_command_is_what_redis_py_packs() -> None:
    ids = np.array([1, 0, -5, 2**62, 42, 42], np.int64)
    prefixes = [b"demo:customer_profile:", b"p:v:"]
    keys = [
        k for pair in zip(*(build_keys(p, ids) for p in prefixes)) for k in pair
    ]  # entity-major
    assert mget_command(prefixes, ids) == b"".join(Connection().pack_command("MGET", *keys))


def test_send_packed_answers_as_execute_command(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    ids = np.array([3, 1, 2], np.int64)
    keys = build_keys(b"k:", ids)
    client.mset({keys[0]: b"three", keys[2]: b"two"})
    assert send_packed(client, mget_command([b"k:"], ids)) == client.execute_command("MGET", *keys)
    assert send_packed(client, mget_command([b"k:"], ids)) == [b"three", None, b"two"]
