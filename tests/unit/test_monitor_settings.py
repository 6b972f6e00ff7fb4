"""Monitor settings and broker URLs: env prefix, secrets from files, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.errors import ConfigError
from monitor.parts import broker_addresses
from monitor.settings import MonitorSettings
from monitor.topic_payloads import status_payload, summary_payload


def test_env_prefix_and_secret_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    db = tmp_path / "db"
    db.write_text("postgresql://u@h/clawbeat\n")
    monkeypatch.setenv("CLAWBEAT_MQTT_URL", "mqtts://monitor@broker:8883")
    monkeypatch.setenv("CLAWBEAT_MQTT_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CLAWBEAT_DATABASE_URL_FILE", str(db))
    monkeypatch.setenv("CLAWBEAT_GRACE", "4")
    settings = MonitorSettings()
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "s3cret"
    assert settings.database_url == "postgresql://u@h/clawbeat"
    assert settings.grace == 4.0
    assert "grace" in settings.model_fields_set


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWBEAT_TOPIC_ROOT", "bad/+/root")
    with pytest.raises(ValidationError, match="topic root"):
        MonitorSettings()
    monkeypatch.delenv("CLAWBEAT_TOPIC_ROOT")
    monkeypatch.setenv("CLAWBEAT_MISSED_LIMIT", "0")
    with pytest.raises(ValidationError, match="missed_limit"):
        MonitorSettings()
    monkeypatch.delenv("CLAWBEAT_MISSED_LIMIT")
    # Refused at start, not at the first TLS connection.
    monkeypatch.setenv("CLAWBEAT_MQTT_KEY_FILE", "/etc/clawbeat/monitor.key")
    with pytest.raises(ValidationError, match="mqtt_key_file needs mqtt_cert_file"):
        MonitorSettings()


def test_broker_urls() -> None:
    [plain] = broker_addresses(MonitorSettings(mqtt_url="mqtt://monitor:p%40ss@example.org"))
    assert (plain.host, plain.port, plain.tls) == ("example.org", 1883, False)
    assert (plain.username, plain.password) == ("monitor", "p@ss")
    assert "p@ss" not in repr(plain)
    [tls] = broker_addresses(MonitorSettings(mqtt_url="mqtts://example.org"))
    assert (tls.port, tls.tls, tls.username) == (8883, True, None)
    [overridden] = broker_addresses(
        MonitorSettings(mqtt_url="mqtt://monitor:old@h", mqtt_password="n3w-secret")
    )
    assert overridden.password == "n3w-secret"
    assert "n3w-secret" not in repr(overridden)
    for bad in ("http://x", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ConfigError, match="invalid broker URL"):
            broker_addresses(MonitorSettings(mqtt_url=bad))


def test_status_and_summary_payloads() -> None:
    raw = status_payload(
        device_id="d1", state="stale", since=0.0, last_seen=None, reason="stopped-beating",
        session="s1", interval=30.0, device_class="default",
    )  # fmt: skip
    assert raw == (
        b'{"device":"d1","state":"stale","since":"1970-01-01T00:00:00.000Z","last_seen":null,'
        b'"reason":"stopped-beating","session":"s1","interval":30.0,"class":"default"}'
    )
    assert summary_payload({"online": 2, "late": 0}, at=0.0) == (
        b'{"total":2,"counts":{"online":2},"at":"1970-01-01T00:00:00.000Z"}'
    )
