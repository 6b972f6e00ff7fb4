"""Broker URLs and endpoints: parsing, precedence of explicit options, TLS rules."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from device_client.endpoint import resolve_endpoint
from device_client.errors import InvalidBrokerUrl
from device_client.urls import BrokerUrl, parse_broker_url, parse_broker_urls, redact


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", BrokerUrl("broker", 1883, tls=False)),
        ("mqtts://broker", BrokerUrl("broker", 8883, tls=True)),
        ("MQTT://Broker.Example:1884/", BrokerUrl("broker.example", 1884, tls=False)),
        ("mqtt://u@h:1", BrokerUrl("h", 1, tls=False, username="u")),
        ("mqtt://u:p@h", BrokerUrl("h", 1883, tls=False, username="u", password="p")),
        ("mqtt://u:@h", BrokerUrl("h", 1883, tls=False, username="u", password="")),
        ("mqtt://d%2F1:p%40ss%3Aw@h", BrokerUrl("h", 1883, False, "d/1", "p@ss:w")),
        ("mqtt://[::1]:1883", BrokerUrl("::1", 1883, tls=False)),
    ],
)
def test_valid_urls(url: str, expected: BrokerUrl) -> None:
    parsed = parse_broker_url(url)
    assert parsed == expected
    assert parsed.password == expected.password


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://broker", "scheme"),
        ("broker:1883", "scheme"),
        ("mqtt://", "no host"),
        ("mqtt://broker:99999", "out of range"),
        ("mqtt://broker:abc", "invalid"),
        ("mqtt://broker:0", "port 0"),
        ("mqtt://broker/topic", "path"),
        ("mqtt://broker?x=1", "query"),
    ],
)
def test_invalid_urls_are_refused_clearly(url: str, problem: str) -> None:
    with pytest.raises(InvalidBrokerUrl, match=problem):
        parse_broker_url(url)


def test_passwords_never_appear_in_errors_or_reprs() -> None:
    with pytest.raises(InvalidBrokerUrl) as info:
        parse_broker_url("http://dev:s3cret@broker")
    assert "s3cret" not in str(info.value)
    parsed = parse_broker_url("mqtt://dev:s3cret@broker")
    assert "s3cret" not in repr(parsed)
    assert "s3cret" not in parsed.redacted()
    assert parsed.redacted() == "mqtt://dev@broker:1883"
    assert redact("mqtt://dev:s3cret@broker:1") == "mqtt://dev:***@broker:1"


def test_without_credentials_keeps_the_address() -> None:
    parsed = parse_broker_url("mqtts://monitor:pw@broker:8884").without_credentials()
    assert parsed == BrokerUrl("broker", 8884, tls=True)


def test_explicit_credentials_override_the_url() -> None:
    endpoint = resolve_endpoint("mqtt://u:p@h", username="other", password="secret")
    assert (endpoint.username, endpoint.password) == ("other", "secret")
    endpoint = resolve_endpoint("mqtt://u:p@h")
    assert (endpoint.username, endpoint.password) == ("u", "p")
    endpoint = resolve_endpoint("mqtt://h")
    assert (endpoint.username, endpoint.password) == (None, None)
    assert endpoint.ssl_context is None
    assert endpoint.describe("dev") == "mqtt://dev@h:1883"
    assert "secret" not in repr(resolve_endpoint("mqtt://h", password="secret"))


def test_mqtts_gets_a_verifying_tls_context() -> None:
    endpoint = resolve_endpoint("mqtts://h")
    assert endpoint.ssl_context is not None
    assert endpoint.ssl_context.verify_mode is ssl.CERT_REQUIRED
    assert endpoint.ssl_context.check_hostname
    assert endpoint.describe() == "mqtts://h:8883"


def test_tls_files_with_plain_mqtt_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidBrokerUrl, match="mqtts://"):
        resolve_endpoint("mqtt://h", tls_ca=tmp_path / "ca.crt")


def test_unreadable_tls_files_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_endpoint("mqtts://h", tls_ca=tmp_path / "missing.crt")
    with pytest.raises(ValueError, match="certificate"):
        resolve_endpoint("mqtts://h", tls_key=tmp_path / "client.key")


def test_a_cluster_list_parses_to_nodes_sharing_one_login_and_tls() -> None:
    endpoint = resolve_endpoint("mqtt://u:p@n1:1001,mqtt://n2:1002 , mqtt://u:p@n3")
    assert endpoint.addresses == (("n1", 1001), ("n2", 1002), ("n3", 1883))
    assert (endpoint.username, endpoint.password) == ("u", "p")
    assert endpoint.describe(address=1) == "mqtt://u@n2:1002"
    assert endpoint.describe() == "mqtt://u@n1:1001 (+2 more)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mqtt://a,mqtts://b", "mix mqtt:// and mqtts://"),
        ("mqtt://u:p@a,mqtt://v:p@b", "give the login once"),
        ("mqtt://a,,mqtt://b", "empty entry"),
        ("mqtt://u:12,34@h", "scheme"),  # an unescaped ',' in a password
    ],
)
def test_a_bad_cluster_list_is_one_clear_error_without_the_password(
    text: str, problem: str
) -> None:
    with pytest.raises(InvalidBrokerUrl) as info:
        parse_broker_urls(text)
    assert problem in str(info.value)
    assert "34" not in str(info.value)
    assert "p@" not in str(info.value)
