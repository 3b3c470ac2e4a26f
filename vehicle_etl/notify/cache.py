"""After a swap: drop the app's cached vehicle data in Redis and tell app instances to drop theirs.

Keys under `mvp-platform:vehicles` are found with SCAN (never KEYS, which blocks Redis on a big
keyspace) and removed with UNLINK (freed in the background) in batches; then a JSON message goes
out on `mvp-platform:vehicles:invalidate` for in-process caches. Redis is optional:
MVP_PLATFORM_REDIS_URL unset means the step is skipped with a log line.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from vehicle_etl.config import Settings
from vehicle_etl.errors import EtlError

log = logging.getLogger(__name__)

KEY_PREFIX = "mvp-platform:vehicles"
CHANNEL = "mvp-platform:vehicles:invalidate"
BATCH = 500


@dataclass(frozen=True)
class Invalidation:
    deleted: int
    receivers: int  # subscribers that got the message (0 is fine: no app instance listening)
    message: dict[str, object]


def redis_url() -> str | None:
    return Settings().redis_url


def safe_url(url: str) -> str:
    """The Redis URL with any password replaced by *** (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def invalidate_after_swap(
    release: str | None,
    run_id: str,
    *,
    url: str | None = None,
    prefix: str = KEY_PREFIX,
    channel: str = CHANNEL,
    batch: int = BATCH,
) -> Invalidation | None:
    """Delete keys matching `<prefix>*` and publish {"release", "run_id", ...} on `channel`.

    Returns None when no Redis is configured. Raises EtlError when Redis is configured but fails:
    the catalog is already live then, so rerunning only this step is enough.
    """
    import redis

    url = url or redis_url()
    if not url:
        log.info("cache invalidation skipped: MVP_PLATFORM_REDIS_URL is not set")
        return None
    shown = safe_url(url)
    try:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    except ValueError as exc:
        raise EtlError(f"MVP_PLATFORM_REDIS_URL is not a Redis URL ({exc}): use redis://host:6379/0") from exc
    deleted = 0
    try:
        pending: list[bytes] = []
        for key in client.scan_iter(match=glob_escape(prefix) + "*", count=1000):
            pending.append(key)
            if len(pending) >= batch:
                deleted += int(client.unlink(*pending))
                pending = []
        if pending:
            deleted += int(client.unlink(*pending))
        message: dict[str, object] = {
            "event": "vehicles_catalog_swapped",
            "release": release,
            "run_id": run_id,
            "prefix": prefix,
            "deleted_keys": deleted,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        receivers = int(client.publish(channel, json.dumps(message)))
    except redis.RedisError as exc:
        raise EtlError(
            f"the new catalog is live, but invalidating the app cache in Redis at {shown} failed after "
            f"{deleted} key(s): {exc}. Check MVP_PLATFORM_REDIS_URL and that Redis is up, then rerun the "
            "publish step (the app serves cached data until its keys expire)."
        ) from exc
    finally:
        client.close()
    log.info("cache invalidated on %s: %d key(s) under %s deleted, message on %s reached %d subscriber(s)",
             shown, deleted, prefix, channel, receivers)
    return Invalidation(deleted=deleted, receivers=receivers, message=message)
