"""Cache invalidation against the real Redis on 127.0.0.1:6379 (unique key prefixes per test)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from vehicle_etl.errors import EtlError
from vehicle_etl.notify import cache

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    r.ping()
    yield r
    r.close()


@pytest.fixture
def ns(client: redis.Redis) -> Iterator[str]:
    """A unique namespace; everything under it is removed afterwards."""
    name = f"vetl-test-{uuid.uuid4().hex[:10]}"
    yield name
    for key in client.scan_iter(match=cache.glob_escape(name) + "*", count=1000):
        client.unlink(key)


class Subscriber:
    """A real subscriber on a channel, collecting messages in a thread."""

    def __init__(self, channel: str) -> None:
        self.pubsub = redis.Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=1)  # consume the subscribe confirmation
        self.messages: list[dict] = []
        self.got = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(50):
            msg = self.pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "message":
                self.messages.append(json.loads(msg["data"]))
                self.got.set()
                return

    def close(self) -> None:
        self.thread.join(timeout=6)
        self.pubsub.close()


def test_deletes_only_keys_under_the_prefix_and_publishes(
    client: redis.Redis, ns: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"{ns}:mvp-platform:vehicles"
    channel = f"{ns}:mvp-platform:vehicles:invalidate"
    with client.pipeline() as pipe:
        for i in range(1234):  # several SCAN pages and UNLINK batches
            pipe.set(f"{prefix}:makes:{i}", "x")
        pipe.hset(f"{prefix}:model:42", mapping={"name": "Civic"})
        pipe.set(prefix, "the bare prefix key")
        pipe.set(f"{ns}:mvp-platform:users:1", "keep")  # other app data
        pipe.set(f"{ns}:mvp-platform:vehicle", "keep")  # not under the prefix
        pipe.set(f"{ns}:other:mvp-platform:vehicles:1", "keep")  # prefix in the middle
        pipe.execute()

    def no_keys(*args, **kwargs):
        raise AssertionError("KEYS must never be used")

    monkeypatch.setattr(redis.Redis, "keys", no_keys)
    sub = Subscriber(channel)
    caplog.set_level(logging.INFO)
    result = cache.invalidate_after_swap("2026_02", "run-123", url=REDIS_URL, prefix=prefix, channel=channel,
                                         batch=100)
    sub.close()

    assert result is not None and result.deleted == 1236
    assert result.receivers == 1
    assert sub.messages and sub.messages[0]["release"] == "2026_02" and sub.messages[0]["run_id"] == "run-123"
    assert sub.messages[0]["deleted_keys"] == 1236 and sub.messages[0]["prefix"] == prefix
    left = sorted(k.decode() for k in client.scan_iter(match=f"{ns}*", count=1000))
    assert left == sorted([f"{ns}:mvp-platform:users:1", f"{ns}:mvp-platform:vehicle",
                           f"{ns}:other:mvp-platform:vehicles:1"])
    assert "1236 key(s)" in caplog.text


def test_glob_characters_in_prefix_match_literally(client: redis.Redis, ns: str) -> None:
    prefix = f"{ns}:v[1]*?"
    client.set(f"{prefix}:a", "1")
    client.set(f"{ns}:v1xx:a", "keep")  # what the unescaped glob would also match
    result = cache.invalidate_after_swap("2026_02", "r", url=REDIS_URL, prefix=prefix, channel=f"{ns}:ch")
    assert result is not None and result.deleted == 1 and result.receivers == 0
    assert client.get(f"{ns}:v1xx:a") == b"keep"
    assert client.exists(f"{prefix}:a") == 0


def test_skipped_without_configuration(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MVP_PLATFORM_REDIS_URL", raising=False)
    caplog.set_level(logging.INFO)
    assert cache.invalidate_after_swap("2026_02", "r") is None
    assert "MVP_PLATFORM_REDIS_URL is not set" in caplog.text


def test_url_from_environment(client: redis.Redis, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MVP_PLATFORM_REDIS_URL", REDIS_URL)
    client.set(f"{ns}:mvp-platform:vehicles:x", "1")
    result = cache.invalidate_after_swap(None, "r", prefix=f"{ns}:mvp-platform:vehicles", channel=f"{ns}:c")
    assert result is not None and result.deleted == 1 and result.message["release"] is None


def test_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(EtlError, match=r"catalog is live.*redis://:\*\*\*@127.0.0.1:\d+/0.*rerun") as info:
        cache.invalidate_after_swap("2026_02", "r", url=f"redis://:hunter2@127.0.0.1:{port}/0")
    assert "hunter2" not in str(info.value)
    with pytest.raises(EtlError, match="not a Redis URL"):
        cache.invalidate_after_swap("2026_02", "r", url="http://127.0.0.1/")


def test_safe_url() -> None:
    assert cache.safe_url("redis://user:pw@h:6380/2") == "redis://user:***@h:6380/2"
    assert cache.safe_url("redis://h:6379/0") == "redis://h:6379/0"
