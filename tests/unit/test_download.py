"""Backup download against a real HTTP server on 127.0.0.1 serving zips built here."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vehicle_etl.errors import ReleaseError, RestoreError
from vehicle_etl.source import backups, download
from vehicle_etl.source.download import DownloadError, NotPublished

BAK = b"TAPE" + bytes(range(256)) * 4000  # an MTF-headed payload, ~1 MB, not very compressible


def bak_zip(payload: bytes = BAK, member: str = "vPICList_Lite1.bak") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(member, payload)
    return buf.getvalue()


def plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("vPICList_lite.sql", "--\n-- PostgreSQL database dump\n--\nCREATE SCHEMA vpic;\n")
    return buf.getvalue()


class Server:
    """Files by path; `cut_once` paths send half the body then drop the connection on the first GET;
    `fail_once` paths answer 503 first; `ignore_range` serves 200 even to Range requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()
        self.fail_once: set[str] = set()
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                owner.requests.append((self.path, self.headers.get("Range")))
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if self.path in owner.fail_once:
                    owner.fail_once.discard(self.path)
                    self.send_error(503)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not owner.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if self.path in owner.cut_once:
                    owner.cut_once.discard(self.path)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/vpic"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, name: str, body: bytes) -> str:
        path = f"/vpic/{name}"
        self.files[path] = body
        return path


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_download_unzips_bak_and_restore_finds_it(server: Server, tmp_path: Path) -> None:
    server.add("vPICList_lite_2026_02.bak.zip", bak_zip())
    got = download.download_release("2026_02", tmp_path, url=server.url, backoff=0)
    assert got == tmp_path / "vPICList_lite_2026_02.bak"
    assert got.read_bytes() == BAK
    assert not (tmp_path / ".partial" / "vPICList_lite_2026_02.bak.zip.part").exists()
    found = backups.find_backup(tmp_path)
    assert (found.release, found.kind, found.path) == ("2026_02", "bak", got)
    # Already present: no second request.
    before = len(server.requests)
    assert download.download_release("2026_02", tmp_path, url=server.url) == got
    assert len(server.requests) == before


def test_truncated_download_is_resumed_with_range(server: Server, tmp_path: Path) -> None:
    body = bak_zip()
    path = server.add("vPICList_lite_2026_02.bak.zip", body)
    server.cut_once.add(path)
    got = download.download_release("2026_02", tmp_path, url=server.url, backoff=0)
    assert got is not None and got.read_bytes() == BAK
    assert len(server.requests) == 2
    assert server.requests[0] == (path, None)
    resumed_at = int(server.requests[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(body) // 2  # what arrived before the cut was kept


def test_server_ignoring_range_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    path = server.add("vPICList_lite_2026_02.bak.zip", bak_zip())
    server.cut_once.add(path)
    server.ignore_range = True
    got = download.download_release("2026_02", tmp_path, url=server.url, backoff=0)
    assert got is not None and got.read_bytes() == BAK  # not the half file appended to the whole one


def test_transient_errors_are_retried_then_give_up(server: Server, tmp_path: Path) -> None:
    path = server.add("vPICList_lite_2026_02.bak.zip", bak_zip())
    server.fail_once.add(path)
    assert download.download_release("2026_02", tmp_path, url=server.url, backoff=0) is not None
    assert [r[0] for r in server.requests] == [path, path]

    other = tmp_path / "other"
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(DownloadError, match="failed after 2 retries.*next run resumes"):
        download.download_release("2026_03", other, url=server.url, retries=2, backoff=0, timeout=2)


def test_corrupt_zip_is_rejected_and_nothing_extracted(server: Server, tmp_path: Path) -> None:
    body = bytearray(bak_zip())
    pos = body.index(b"TAPE") + 5000
    body[pos : pos + 8] = b"\xff" * 8  # damage the member's data: the CRC no longer matches
    server.add("vPICList_lite_2026_02.bak.zip", bytes(body))
    with pytest.raises(DownloadError, match="corrupt.*CRC error in vPICList_Lite1.bak"):
        download.download_release("2026_02", tmp_path, url=server.url, backoff=0)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []
    assert list((tmp_path / ".partial").iterdir()) == []  # the bad download is gone: the next try starts over
    with pytest.raises(RestoreError, match="no vPIC backup"):
        backups.find_backup(tmp_path)

    server.add("vPICList_lite_2026_03.bak.zip", b"<html>maintenance</html>")
    with pytest.raises(DownloadError, match="not a valid zip"):
        download.download_release("2026_03", tmp_path, url=server.url, backoff=0)

    server.add("vPICList_lite_2026_04.bak.zip", bak_zip(b"MZ not a backup"))
    with pytest.raises(DownloadError, match="not a SQL Server backup"):
        download.download_release("2026_04", tmp_path, url=server.url, backoff=0)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []


def test_falls_back_to_plain_dump_and_keeps_it_zipped(server: Server, tmp_path: Path) -> None:
    server.add("vPICList_lite_2026_02.plain.zip", plain_zip())
    got = download.download_release("2026_02", tmp_path, url=server.url, backoff=0)
    assert got == tmp_path / "vPICList_lite_2026_02.plain.zip"
    assert backups.find_backup(tmp_path).kind == "pgdump"
    with pytest.raises(NotPublished, match="2025_01 is not published.*bak.zip, vPICList_lite_2025_01.plain.zip"):
        download.download_release("2025_01", tmp_path, url=server.url, backoff=0)


def test_latest_release_and_retention(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for old in ("2025_09", "2025_10", "2025_11"):
        (tmp_path / f"vPICList_lite_{old}.bak").write_bytes(b"TAPE")
    (tmp_path / "vPICList_lite_2025_10.plain.zip").write_bytes(plain_zip())
    (tmp_path / "README.txt").write_text("not a backup")
    server.add("vPICList_lite_2025_12.bak.zip", bak_zip())
    server.add("vPICList_lite_2026_01.bak.zip", bak_zip())
    monkeypatch.setenv("VPIC_DOWNLOAD_BASE_URL", server.url)
    monkeypatch.setenv("VPIC_KEEP_RELEASES", "3")

    got = download.download_latest(tmp_path, today=date(2026, 2, 5), backoff=0)  # February not out yet
    assert got == tmp_path / "vPICList_lite_2026_01.bak"
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == ["README.txt", "vPICList_lite_2025_10.bak", "vPICList_lite_2025_10.plain.zip",
                     "vPICList_lite_2025_11.bak", "vPICList_lite_2026_01.bak"]
    assert backups.find_backup(tmp_path).release == "2026_01"


def test_off_by_default_and_bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPIC_DOWNLOAD_BASE_URL", raising=False)
    assert download.download_release("2026_02", tmp_path) is None
    assert download.download_latest(tmp_path) is None
    with pytest.raises(ReleaseError, match="invalid release"):
        download.download_release("../../etc", tmp_path, url="http://127.0.0.1:9")
    monkeypatch.setenv("VPIC_KEEP_RELEASES", "0")
    with pytest.raises(DownloadError, match="at least 1"):
        download.keep_releases()
