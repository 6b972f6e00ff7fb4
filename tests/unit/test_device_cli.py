"""``clawbeat device`` / ``clawbeat simulate`` argument handling and environment defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from device_client import cli
from device_client.settings import DeviceSettings

ENV = (
    "CLAWBEAT_MQTT_URL",
    "CLAWBEAT_MQTT_PASSWORD",
    "CLAWBEAT_MQTT_PASSWORD_FILE",
    "CLAWBEAT_MQTT_CA_FILE",
    "CLAWBEAT_MQTT_CERT_FILE",
    "CLAWBEAT_MQTT_KEY_FILE",
    "CLAWBEAT_TOPIC_ROOT",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clawbeat")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_device_parser(sub)
    cli.add_simulate_parser(sub)
    return parser


def test_every_option_has_help() -> None:
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("device", "simulate"):
        sub = subparsers.choices[name]
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_device_defaults() -> None:
    args = _parser().parse_args(["device", "--id", "pump-7"])
    assert args.func is cli.run_device_command
    assert (args.interval, args.keepalive, args.jitter) == (30.0, 60, 0.0)


def test_simulate_options() -> None:
    args = _parser().parse_args(
        ["simulate", "--devices", "50", "--die-fraction", "0.1", "--interval", "0.5"]
    )
    assert args.func is cli.run_simulate_command
    assert (args.devices, args.die_fraction, args.interval, args.prefix) == (50, 0.1, 0.5, "sim-")


@pytest.mark.parametrize(
    "argv",
    [
        ["device"],
        ["device", "--id", "x", "--interval", "0"],
        ["device", "--id", "x", "--keepalive", "0"],
        ["device", "--id", "x", "--keepalive", "301"],
        ["device", "--id", "x", "--password", "a", "--password-file", "f"],
        ["simulate", "--devices", "0"],
        ["simulate", "--devices", "5", "--die-fraction", "2"],
        ["simulate", "--devices", "five"],
    ],
)
def test_bad_arguments_exit_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2


def _resolve(argv: list[str]) -> tuple[str, str | None]:
    args = _parser().parse_args(["device", "--id", "pump-7", *argv])
    urls, password = cli._broker_and_password(args, DeviceSettings())
    return ",".join(url.redacted() for url in urls), password


def test_environment_url_gives_the_address_but_never_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAWBEAT_MQTT_URL", "mqtt://monitor:monitor-pw@broker:1884")
    assert _resolve([]) == ("mqtt://broker:1884", None)


def test_password_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    env_secret = tmp_path / "env-pw"
    env_secret.write_text("from-env-file\n")
    monkeypatch.setenv("CLAWBEAT_MQTT_PASSWORD_FILE", str(env_secret))
    assert _resolve([])[1] == "from-env-file"
    monkeypatch.setenv("CLAWBEAT_MQTT_PASSWORD", "from-env")
    assert _resolve([])[1] == "from-env"
    assert _resolve(["--broker", "mqtt://pump-7:from-url@h"]) == (
        "mqtt://pump-7@h:1883",
        "from-url",
    )
    assert _resolve(["--broker", "mqtt://h", "--password-file", str(secret)])[1] == "from-file"
    assert _resolve(["--broker", "mqtt://u:x@h", "--password", "flag"])[1] == "flag"


def test_a_list_of_brokers_shares_one_login_and_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAWBEAT_MQTT_URL", "mqtt://monitor:pw@n1:1883, mqtt://monitor:pw@n2")
    assert _resolve([]) == ("mqtt://n1:1883,mqtt://n2:1883", None)  # not the monitor's login
    assert _resolve(["--broker", "mqtt://pump-7:s3@n1,mqtt://n2:1884"]) == (
        "mqtt://pump-7@n1:1883,mqtt://pump-7@n2:1884",
        "s3",
    )


def test_environment_tls_files_apply_to_mqtts_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    monkeypatch.setenv("CLAWBEAT_MQTT_CA_FILE", str(ca))
    settings = DeviceSettings()
    plain = _parser().parse_args(["device", "--id", "d", "--broker", "mqtt://h"])
    (url,), _ = cli._broker_and_password(plain, settings)
    assert cli._tls_files(plain, settings, url) == (None, None, None)
    tls = _parser().parse_args(["device", "--id", "d", "--broker", "mqtts://h"])
    (url,), _ = cli._broker_and_password(tls, settings)
    assert cli._tls_files(tls, settings, url) == (ca, None, None)


def test_configuration_errors_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["device", "--id", "bad/id", "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert "invalid device id 'bad/id'" in capsys.readouterr().err
    assert cli.main(["device", "--id", "d", "--broker", "http://h"]) == 2
    assert "mqtt:// or mqtts://" in capsys.readouterr().err
    assert cli.main(["simulate", "--devices", "3", "--prefix", "a/", "--broker", "mqtt://h"]) == 2
    assert "invalid device id" in capsys.readouterr().err


def test_invalid_topic_root_in_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWBEAT_TOPIC_ROOT", "bad/#")
    with pytest.raises(ValueError, match="topic root"):
        DeviceSettings()
