"""The request guard, a pure ASGI layer before FastAPI: URL and body limits, control characters,
NHTSA's case-insensitive path and parameter names, and repeated GETs answered from the cache."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote, urlencode

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vehicle_etl.serving.vpic_api import formats as f
from vehicle_etl.serving.vpic_api.answer_cache import Answer, AnswerCache
from vehicle_etl.serving.vpic_api.answers import CACHE_KEY, CONTROL_CHARS, MAX_BODY, MAX_URL, BadRequest, etag_matches

log = logging.getLogger(__name__)



class NhtsaRequests:
    """Pure ASGI middleware: rejects oversized or control-character requests with a clear 4xx
    before any routing, and maps path and query names case-insensitively to the canonical ones."""

    def __init__(self, app: ASGIApp, names: dict[str, str], cache: AnswerCache) -> None:
        self.app = app
        self.names = names
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        qs: bytes = scope.get("query_string", b"")
        if len(raw_path) + len(qs) > MAX_URL:
            await send_plain(send, 414, f"request URL longer than {MAX_URL} bytes")
            return
        path: str = scope["path"]
        query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True)
        if CONTROL_CHARS.search(path) or any(CONTROL_CHARS.search(unquote(k) + v) for k, v in query):
            await send_plain(send, 400, "control characters are not allowed in the path or the query")
            return
        scope = dict(scope)
        scope["path"] = self._canonical(path)
        scope["raw_path"] = scope["path"].encode()
        scope["query_string"] = urlencode([(k.lower(), v) for k, v in query]).encode()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await send_plain(send, 413, f"request body larger than {MAX_BODY} bytes")
            return
        if scope["method"] == "GET" and self.cache.enabled:
            # The route offers its answer to the cache under the request as it came (VpicApp).
            scope[CACHE_KEY] = ((raw_path, qs), self.cache.generation)
        await self.app(scope, _limited(receive), send)

    def _canonical(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) > 3 and parts[1].lower() == "api" and parts[2].lower() == "vehicles":
            parts[1], parts[2] = "api", "vehicles"
            parts[3] = self.names.get(parts[3].lower(), parts[3])
            if parts[3] in ("GetModelsForMakeYear", "GetModelsForMakeIdYear"):
                for i in range(4, len(parts), 2):
                    parts[i] = _MODEL_KEYWORDS.get(parts[i].lower(), parts[i])
        return "/".join(parts)


_MODEL_KEYWORDS = {"make": "make", "makeid": "makeId", "modelyear": "modelyear", "vehicletype": "vehicletype"}


def _limited(receive: Receive) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise BadRequest(f"request body larger than {MAX_BODY} bytes", 413)
        return message

    return wrapped


class VpicApp(FastAPI):
    """FastAPI, with kept answers sent before any middleware, routing or validation runs.

    The cache key is the request as it came: the raw path and query string. An entry exists only
    for a GET that passed NhtsaRequests' checks and got a 200 from its route, and those checks read
    nothing but the path, the query and Content-Length; so a request with the same bytes and no
    body gets the same answer. (Another spelling of the same question, e.g. other letter case, is
    another entry.)"""

    answers: AnswerCache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.answers.version is not None:
            answer = self.answers.get((scope.get("raw_path") or scope["path"].encode(), scope["query_string"]))
            if answer is not None:
                inm = None
                for name, value in scope["headers"]:
                    if name == b"if-none-match":
                        inm = value
                    elif name == b"content-length" and value != b"0":
                        break  # a GET with a body: through the checks (413 when too large)
                else:
                    await send_cached(send, answer, inm)
                    return
        await super().__call__(scope, receive, send)


async def send_cached(send: Send, answer: Answer, if_none_match: bytes | None) -> None:
    if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), answer.etag):
        await send({"type": "http.response.start", "status": 304, "headers": answer.not_modified})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


async def send_plain(send: Send, status: int, message: str) -> None:
    body = f.envelope([], message, None, 0)
    data, media = f.render(body, "json", "")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
