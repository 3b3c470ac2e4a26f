"""Failure alerts and the optional success summary: e-mail through Airflow's SMTP notifier and a
Slack-compatible webhook.

Message building is plain functions over plain values (testable without Airflow); Airflow and the
database are touched only inside the senders. Nothing here may raise out of a callback: a broken
mail server must not hide the task's own failure, so every sender logs and returns instead.

Configuration (environment):
  ALERT_EMAIL_TO       comma-separated recipients; no e-mail when unset
  ALERT_EMAIL_FROM     sender (default: the SMTP connection's from_email, else vehicle-etl@localhost)
  ALERT_SMTP_CONN_ID   Airflow SMTP connection id (default smtp_default)
  ALERT_WEBHOOK_URL    Slack-compatible incoming webhook; no webhook when unset
  ALERT_ON_SUCCESS     1/true: also send a success summary with the release diff
"""

from __future__ import annotations

import html
import json
import logging
import re
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vehicle_etl.config import Settings

log = logging.getLogger(__name__)

DEFAULT_FROM = "vehicle-etl@localhost"
MAX_TABLE_ROWS = 60  # keep mails and chat messages readable; the run history has every check

# Credentials that could ride along in an error message (URLs, libpq conninfo, key=value).
_SECRET_PATTERNS = [
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key)\s*[=:]\s*('[^']*'|\"[^\"]*\"|\S+)"), r"\1=***"),
]


def redact(text: str) -> str:
    """Hide passwords and tokens in free text (errors, URLs) before it leaves the machine."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


@dataclass(frozen=True)
class Message:
    subject: str
    text: str  # plain text: webhook and logs
    html: str  # e-mail body
    attachments: dict[str, str] = field(default_factory=dict)  # file name -> content


# -- building messages (pure) ------------------------------------------------------------------
def _checks(rows: list[dict[str, Any]] | None) -> list[Any]:
    from vehicle_etl.quality.results import CheckResult

    out = []
    for r in rows or []:
        try:
            out.append(CheckResult(**{k: r.get(k) for k in ("name", "passed", "observed", "threshold")},
                                   blocking=bool(r.get("blocking", True)), detail=str(r.get("detail") or "")))
        except TypeError:
            continue
    return out


def check_table(rows: list[dict[str, Any]] | None, limit: int = MAX_TABLE_ROWS) -> str:
    """Failures first, then warnings, then passes; at most `limit` rows plus a count of the rest."""
    from vehicle_etl.quality.results import format_table

    checks = _checks(rows)
    if not checks:
        return "(no quality checks recorded for this run)"
    order = {"FAIL": 0, "warn": 1, "ok": 2}
    checks.sort(key=lambda c: order[c.verdict])
    shown = checks[:limit]
    text = format_table(shown)
    if len(checks) > limit:
        text += f"\n... and {len(checks) - limit} more passed checks (see run history)"
    return text


def failure_message(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    release: str | None,
    checks: list[dict[str, Any]] | None = None,
    error: str | None = None,
    log_url: str | None = None,
    try_number: int | None = None,
) -> Message:
    """Subject: DAG, task, release and the first failing check; body: the check table and the log link."""
    from vehicle_etl.quality.results import first_failure

    failed = [c for c in (checks or []) if not c.get("passed") and c.get("blocking", True)]
    first = first_failure(failed) if failed else None
    subject = f"[vehicle-etl] FAILED {dag_id}.{task_id} release {release or 'unknown'}"
    if first:
        subject += f": check {first} failed"
    lines = [
        f"DAG:      {dag_id}",
        f"Task:     {task_id}" + (f" (try {try_number})" if try_number else ""),
        f"Run:      {run_id}",
        f"Release:  {release or 'unknown'}",
    ]
    if first:
        row = next(c for c in failed if c.get("name") == first)
        lines.append(f"First failing check: {first} (observed {row.get('observed')}, "
                     f"threshold {row.get('threshold')}) {row.get('detail') or ''}".rstrip())
    if error:
        lines.append(f"Error:    {error}")
    lines.append(f"Log:      {log_url or 'n/a (see the Airflow UI)'}")
    lines.append("Live catalog: unchanged unless the swap task succeeded; staging is kept for inspection "
                 "(vehicle-etl cleanup drops it).")
    table = check_table(checks)
    text = redact("\n".join(lines) + "\n\nQuality checks:\n" + table)
    body = redact("<br>\n".join(html.escape(line) for line in lines))
    link = f'<p><a href="{html.escape(log_url)}">Task log</a></p>' if log_url else ""
    page = f"<p>{body}</p>{link}<h3>Quality checks</h3><pre>{html.escape(redact(table))}</pre>"
    return Message(redact(subject), text, page)


def success_message(
    *,
    dag_id: str,
    run_id: str,
    release: str | None,
    counts: dict[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    diff: dict[str, Any] | None = None,
) -> Message:
    """Run summary with the warnings of the gate and the release diff (attached as .md and .json)."""
    from vehicle_etl.release import diff as diff_mod

    warned = [c for c in (checks or []) if not c.get("passed")]
    lines = [f"DAG:      {dag_id}", f"Run:      {run_id}", f"Release:  {release or 'unknown'} is live",
             f"Checks:   {len(checks or [])} run, {len(warned)} warnings"]
    if counts:
        lines.append("Rows:     " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    diff_md = diff_mod.to_markdown(diff) if diff else "(no release diff recorded)"
    table = check_table(warned) if warned else "(no warnings)"
    text = redact("\n".join(lines) + "\n\nWarnings:\n" + table + "\n\n" + diff_md)
    page = (f"<p>{'<br>'.join(html.escape(x) for x in lines)}</p><h3>Warnings</h3><pre>{html.escape(table)}</pre>"
            f"<h3>Release diff</h3><pre>{html.escape(diff_md)}</pre>")
    attachments = {}
    if diff:
        attachments = {f"release_diff_{release or run_id}.md": diff_md,
                       f"release_diff_{release or run_id}.json": json.dumps(diff, indent=2, default=str)}
    subject = f"[vehicle-etl] {dag_id}: release {release or 'unknown'} is live"
    return Message(redact(subject), text, redact(page), attachments)


def webhook_payload(message: Message) -> dict[str, str]:
    """Slack-compatible JSON: `text` with the summary and the check table in a code block."""
    head, _, rest = message.text.partition("\n\n")
    text = f"*{message.subject}*\n{head}"
    if rest:
        text += f"\n```\n{rest[:3500]}\n```"
    return {"text": text}


# -- sending (never raises) --------------------------------------------------------------------
def _recipients() -> list[str]:
    return list(Settings().alerts.email_to)


def send_email(message: Message, to: list[str] | None = None, conn_id: str | None = None) -> bool:
    """Send through airflow.providers.smtp's SmtpNotifier; True when handed to the server."""
    to = to if to is not None else _recipients()
    if not to:
        log.info("ALERT_EMAIL_TO is not set: no alert e-mail")
        return False
    conn_id = conn_id or Settings().alerts.smtp_conn_id
    try:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        with tempfile.TemporaryDirectory(prefix="vehicle-etl-alert-") as tmp:
            files = []
            for name, content in message.attachments.items():
                path = Path(tmp) / name
                path.write_text(content)
                files.append(str(path))
            sender = Settings().alerts.email_from
            for attempt in (sender, DEFAULT_FROM):
                notifier = SmtpNotifier(to=to, from_email=attempt, subject=message.subject,
                                        html_content=message.html, files=files or None, smtp_conn_id=conn_id)
                try:
                    # notify() directly, not notifier(context): our texts are final, and rendering
                    # them as Jinja templates would mangle any '{{' in data or error messages.
                    notifier.notify({})
                    break
                except ValueError as exc:  # no sender anywhere: fall back to the default one
                    if attempt is not None or "from_email" not in str(exc):
                        raise
        log.info("alert e-mail sent to %d recipient(s) via connection %s", len(to), conn_id)
        return True
    except Exception:
        log.exception("could not send the alert e-mail via connection %s", conn_id)
        return False


def send_webhook(message: Message, url: str | None = None, timeout: float = 10.0) -> bool:
    """POST the Slack-compatible payload; True on a 2xx answer."""
    url = url or Settings().alerts.webhook_url
    if not url:
        return False
    try:
        data = json.dumps(webhook_payload(message)).encode()
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (operator-configured URL)
            ok = 200 <= resp.status < 300
        if not ok:
            log.error("alert webhook answered HTTP %s", resp.status)
        return ok
    except Exception as exc:  # the URL itself is a secret (Slack tokens live in it): never log it
        log.error("could not post the alert webhook: %s", redact(type(exc).__name__ + ": " + str(exc))[:300])
        return False


def deliver(message: Message) -> dict[str, bool]:
    return {"email": send_email(message), "webhook": send_webhook(message)}


# -- Airflow entry points ----------------------------------------------------------------------
def _run_record(run_id: str) -> dict[str, Any]:
    """The run-history row (release, checks, diff), best effort: the alert goes out without it."""
    try:
        from vehicle_etl.config import Settings
        from vehicle_etl.platform_db import connect
        from vehicle_etl.release import history

        with connect(Settings()) as conn:
            return history.get_run(conn, run_id) or {}
    except Exception as exc:
        log.warning("run history unavailable for the alert: %s", redact(str(exc))[:300])
        return {}


def context_facts(context: dict[str, Any]) -> dict[str, Any]:
    """dag_id, task_id, run_id, try_number, log_url, error and params from an Airflow context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    exc = context.get("exception")
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # computing it needs configuration that a callback may not have
        log_url = None
    return {
        "dag_id": getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", "?"),
        "task_id": getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?"),
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?"),
        "try_number": getattr(ti, "try_number", None),
        "log_url": log_url,
        "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
        "params": dict(context.get("params") or {}),
    }


def on_task_failure(context: dict[str, Any]) -> None:
    """on_failure_callback for every task: e-mail and webhook naming the first failing check."""
    try:
        facts = context_facts(context)
        record = _run_record(str(facts["run_id"]))
        release = record.get("release") or facts["params"].get("release")
        message = failure_message(
            dag_id=str(facts["dag_id"]), task_id=str(facts["task_id"]), run_id=str(facts["run_id"]),
            release=release, checks=record.get("checks"), error=facts["error"] or record.get("error"),
            log_url=facts["log_url"], try_number=facts["try_number"],
        )
        log.error("%s\n%s", message.subject, message.text)
        deliver(message)
    except Exception:
        log.exception("building or sending the failure alert failed")


def success_enabled() -> bool:
    return Settings().alerts.on_success


def send_success_summary(run_id: str, *, dag_id: str = "vpic_vehicle_etl", force: bool = False) -> bool:
    """After a successful swap: the summary with the release diff (only when ALERT_ON_SUCCESS=1)."""
    if not (force or success_enabled()):
        return False
    try:
        record = _run_record(run_id)
        message = success_message(dag_id=dag_id, run_id=run_id, release=record.get("release"),
                                  counts=record.get("counts"), checks=record.get("checks"),
                                  diff=record.get("diff"))
        sent = deliver(message)
        return any(sent.values())
    except Exception:
        log.exception("building or sending the success summary failed")
        return False
