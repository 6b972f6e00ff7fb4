"""Delivery errors shown by the API hide the channel URL's secrets (alerts/api.py)."""

from __future__ import annotations

import pytest

from monitor.alerts.api import redact_error


@pytest.mark.parametrize(
    ("url", "error", "secrets"),
    [
        (
            "tgram://123456789:AAHxyzSECRETtoken/5551234",
            "HTTPSConnectionPool(host='api.telegram.org'): /bot123456789:AAHxyzSECRETtoken/send",
            ["AAHxyzSECRETtoken", "123456789"],
        ),
        (
            "json://user:hunter22@127.0.0.1:9/hook",
            "POST to http://user:hunter22@127.0.0.1:9/hook refused",
            ["hunter22"],
        ),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
            "404 for https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
            ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
        ),
    ],
)
def test_secrets_of_the_channel_url_are_masked(url: str, error: str, secrets: list[str]) -> None:
    shown = redact_error(error, url)
    assert shown is not None
    for secret in secrets:
        assert secret not in shown
    assert "****" in shown


def test_what_is_not_secret_stays_readable() -> None:
    error = "A Connection error occurred sending JSON notification to 127.0.0.1."
    assert redact_error(error, "json://user:pw12345@127.0.0.1:9/hook") == error
    assert redact_error(None, "json://127.0.0.1/x") is None
