"""``clawbeat alerts|channels|rules|maintenance`` against a real SQLite database.

The e2e tests drive these commands against a running monitor; here the rest of the
surface: errors, redaction, mutes, snoozes, removal, and a test notification that
really reaches a local webhook (and one that cannot).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.alert_sinks import WebhookSink, free_port

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def hooks() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


def run(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CLAWBEAT_DATABASE_URL": database_url},
        input=stdin,
        timeout=60,
        check=False,
    )


@SQLITE_ONLY
def test_channels_rules_mutes_and_snoozes(
    database_url: str, hooks: WebhookSink, tmp_path: Path
) -> None:
    # The URL from stdin, so the secret is not in the process list; shown redacted.
    secret_url = hooks.url("/ops").replace("json://", "json://bot:hunter2@")
    added = run(database_url, "channels", "add", "ops", "-", stdin=secret_url + "\n")
    assert added.returncode == 0, added.stderr
    assert "hunter2" not in added.stdout
    url_file = tmp_path / "url"
    url_file.write_text(f"json://127.0.0.1:{free_port()}/nobody\n")
    assert run(database_url, "channels", "add", "dead", "--url-file", str(url_file)).returncode == 0
    listed = run(database_url, "channels", "list").stdout
    assert "ops" in listed
    assert "hunter2" not in listed
    assert "****" in listed

    sent = run(database_url, "channels", "test", "ops")
    assert sent.returncode == 0, sent.stderr
    (post,) = hooks.wait(lambda p: True)
    assert post.title == "[clawbeat] test notification"
    assert post.path == "/ops"
    failed = run(database_url, "channels", "test", "dead")
    assert failed.returncode == 1
    assert "test notification failed" in failed.stderr

    bad = run(database_url, "channels", "add", "bad", "nonsense://token-123@x")
    assert bad.returncode == 2
    assert "token-123" not in bad.stderr
    assert "apprise cannot use this URL" in bad.stderr
    dup = run(database_url, "channels", "add", "ops", hooks.url())
    assert dup.returncode == 2
    assert "already exists" in dup.stderr

    assert (
        "no rules: every channel receives critical alerts"
        in run(database_url, "rules", "list").stdout
    )
    missing = run(database_url, "rules", "add", "r1", "--channel", "pager")
    assert missing.returncode == 2
    assert "no such channel(s): pager" in missing.stderr
    ok = run(database_url, "rules", "add", "r1", "--channel", "ops", "--class", "critical",
             "--min-severity", "warning", "--escalate-to", "dead")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    rules = run(database_url, "rules", "list").stdout
    assert "critical" in rules
    assert "warning" in rules
    assert run(database_url, "rules", "remove", "r1").returncode == 0
    assert run(database_url, "rules", "remove", "r1").returncode == 2

    muted = run(database_url, "alerts", "mute", "--tag", "line-3", "--for", "1h", "--note", "x")
    assert muted.returncode == 0, muted.stderr
    assert "tag line-3 silenced until" in muted.stdout
    assert "tag line-3" in run(database_url, "alerts", "mutes").stdout
    assert run(database_url, "alerts", "unmute", "1").returncode == 0
    assert "no active mutes" in run(database_url, "alerts", "mutes").stdout
    nothing = run(database_url, "alerts", "mute", "--for", "1h")
    assert nothing.returncode == 2
    assert "name devices, classes or tags" in nothing.stderr
    bad_time = run(database_url, "maintenance", "add", "--all", "--every", "someday 02:00",
                   "--for", "1h")  # fmt: skip
    assert bad_time.returncode == 2
    assert "not a day of the week" in bad_time.stderr

    assert "no open alerts" in run(database_url, "alerts", "list").stdout
    unknown = run(database_url, "alerts", "ack", "42")
    assert unknown.returncode == 2
    assert "no alert #42" in unknown.stderr
    assert run(database_url, "alerts", "snooze", "42", "--for", "1h").returncode == 2
    assert "0 pending" in run(database_url, "alerts", "deliveries").stdout
    assert run(database_url, "alerts", "retry", "7").returncode == 1
    assert run(database_url, "channels", "remove", "dead").returncode == 0
