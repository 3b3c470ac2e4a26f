"""Alerts end to end: a real SMTP server on loopback (aiosmtpd) and a real local HTTP receiver."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from vehicle_etl.notify import alerts

CHECKS = [
    {"name": "min_rows_make", "passed": True, "observed": 4, "threshold": 1, "blocking": True, "detail": ""},
    {"name": "wmi_without_make", "passed": False, "observed": 14, "threshold": "0", "blocking": False,
     "detail": "tolerated"},
    {"name": "unique_make_id", "passed": False, "observed": 1, "threshold": 0, "blocking": True,
     "detail": "duplicated keys in make(make_id)"},
    {"name": "fk_pattern_schema", "passed": False, "observed": 2, "threshold": 0, "blocking": True, "detail": ""},
]


@dataclass
class Inbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """aiosmtpd on 127.0.0.1 and an Airflow SMTP connection (env var) pointing at it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox(_free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
            inbox.envelopes.append(envelope)
            inbox.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=inbox.port)
    controller.start()
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": inbox.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 5}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.test, data@example.test")
    monkeypatch.setenv("ALERT_EMAIL_FROM", "vehicle-etl@example.test")
    monkeypatch.delenv("ALERT_SMTP_CONN_ID", raising=False)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    receiver = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.posts.append({"content_type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret-token"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def _context(exc: BaseException, run_id: str = "manual__2026-11-29T00:00:00", task_id: str = "validate") -> dict:
    ti = SimpleNamespace(task_id=task_id, dag_id="vpic_vehicle_etl", try_number=1, run_id=run_id,
                         log_url="http://airflow.example.test/dags/vpic_vehicle_etl/runs/x/tasks/validate")
    return {"ti": ti, "dag": SimpleNamespace(dag_id="vpic_vehicle_etl"), "run_id": run_id, "exception": exc,
            "params": {"release": "2026_02"}}


# -- message building (no Airflow, no network) --------------------------------------------------
def test_failure_message_names_dag_task_release_and_first_blocking_check() -> None:
    msg = alerts.failure_message(dag_id="vpic_vehicle_etl", task_id="key_checks", run_id="r1", release="2026_02",
                                 checks=CHECKS, error="QualityGateError: gate failed", log_url="http://log/x")
    assert "vpic_vehicle_etl.key_checks" in msg.subject
    assert "2026_02" in msg.subject
    assert "unique_make_id" in msg.subject  # the first *blocking* failure, not the earlier warning
    assert "wmi_without_make" not in msg.subject
    # failures first in the table, then warnings, then passes
    table = msg.text.split("Quality checks:")[1]
    assert table.index("unique_make_id") < table.index("wmi_without_make") < table.index("min_rows_make")
    assert "http://log/x" in msg.html and "<pre>" in msg.html


def test_messages_carry_no_secrets() -> None:
    error = ("OperationalError: connection to postgresql://etl:hunter2@db.example:5432/mvp failed; "
             "host=db password=s3cret dbname=x")
    msg = alerts.failure_message(dag_id="d", task_id="t", run_id="r", release=None, error=error)
    for text in (msg.subject, msg.text, msg.html):
        assert "hunter2" not in text and "s3cret" not in text
    assert "postgresql://etl:***@db.example" in msg.text


def test_webhook_payload_is_slack_text() -> None:
    msg = alerts.failure_message(dag_id="d", task_id="t", run_id="r", release="2026_02", checks=CHECKS)
    payload = alerts.webhook_payload(msg)
    assert set(payload) == {"text"}
    assert payload["text"].startswith("*[vehicle-etl] FAILED d.t")
    assert "```" in payload["text"] and "unique_make_id" in payload["text"]


def test_importing_alerts_does_not_import_airflow_or_gx() -> None:
    code = ("import sys, vehicle_etl.notify.alerts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'great_expectations')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# -- delivery against real servers --------------------------------------------------------------
def test_on_task_failure_sends_email_and_webhook(smtp_server: Inbox, webhook: Receiver,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "_run_record", lambda run_id: {"release": "2026_02", "checks": CHECKS})
    alerts.on_task_failure(_context(RuntimeError("quality gate failed at key checks: unique_make_id")))

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["Subject"].startswith("[vehicle-etl] FAILED vpic_vehicle_etl.validate release 2026_02")
    assert "unique_make_id" in mail["Subject"]
    assert mail["From"] == "vehicle-etl@example.test"
    assert sorted(smtp_server.envelopes[0].rcpt_tos) == ["data@example.test", "oncall@example.test"]
    body = mail.get_body(("html",)).get_content()
    assert "fk_pattern_schema" in body and "http://airflow.example.test/dags/vpic_vehicle_etl" in body

    assert len(webhook.posts) == 1
    assert webhook.posts[0]["content_type"] == "application/json"
    assert "unique_make_id" in webhook.posts[0]["json"]["text"]


def test_callback_never_raises_when_everything_is_down(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()  # nothing listens here
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.test")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook?token=abc123")
    monkeypatch.setattr(alerts, "_run_record", lambda run_id: (_ for _ in ()).throw(RuntimeError("db down")))
    alerts.on_task_failure(_context(RuntimeError("boom")))  # must not raise
    assert "abc123" not in caplog.text
    assert alerts.send_email(alerts.failure_message(dag_id="d", task_id="t", run_id="r", release=None)) is False


def test_webhook_reports_http_errors(webhook: Receiver) -> None:
    webhook.status = 500
    msg = alerts.failure_message(dag_id="d", task_id="t", run_id="r", release=None)
    assert alerts.send_webhook(msg) is False
    webhook.status = 200
    assert alerts.send_webhook(msg) is True
    assert len(webhook.posts) == 2


def test_success_summary_is_opt_in_and_attaches_the_diff(smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    diff = {"live_exists": True, "staging": "vehicles_staging", "live": "vehicles", "entities": {
        "makes": {"live": 4, "staged": 5, "added": 1, "removed": 0, "changed": 0,
                  "examples": {"added": [{"id": 99, "name": "NEWMAKE"}], "removed": [], "changed": []}}}}
    record = {"release": "2026_03", "counts": {"make": 5}, "checks": CHECKS[:2], "diff": diff}
    monkeypatch.setattr(alerts, "_run_record", lambda run_id: record)

    monkeypatch.delenv("ALERT_ON_SUCCESS", raising=False)
    assert alerts.send_success_summary("r1") is False
    assert smtp_server.messages == []

    monkeypatch.setenv("ALERT_ON_SUCCESS", "1")
    assert alerts.send_success_summary("r1") is True
    mail = smtp_server.messages[0]
    assert "release 2026_03 is live" in mail["Subject"]
    names = {part.get_filename(): part.get_content() for part in mail.iter_attachments()}
    assert "release_diff_2026_03.md" in names and "release_diff_2026_03.json" in names
    assert "NEWMAKE" in str(names["release_diff_2026_03.md"])
    assert "wmi_without_make" in mail.get_body(("html",)).get_content()
