"""Environment defaults for the ``device`` and ``simulate`` commands.

Variables are shared with the monitor (prefix ``CLAWBEAT_``): ``CLAWBEAT_MQTT_URL``,
``CLAWBEAT_MQTT_PASSWORD`` or ``CLAWBEAT_MQTT_PASSWORD_FILE``, ``CLAWBEAT_MQTT_CA_FILE``,
``CLAWBEAT_MQTT_CERT_FILE``, ``CLAWBEAT_MQTT_KEY_FILE``, ``CLAWBEAT_TOPIC_ROOT``. Because
the monitor's own credentials may be in them, a device takes only the broker's address
from ``CLAWBEAT_MQTT_URL`` (never its user or password); explicit command-line options
always win over the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from device_client.protocol import DEFAULT_TOPIC_ROOT, validate_topic_root

DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"


class DeviceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWBEAT_", extra="ignore")

    mqtt_url: str = DEFAULT_BROKER_URL  # only its address is used, never its credentials
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    topic_root: str = DEFAULT_TOPIC_ROOT

    @field_validator("topic_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return validate_topic_root(value)

    def password(self) -> str | None:
        """``CLAWBEAT_MQTT_PASSWORD``, else the first line of ``..._PASSWORD_FILE``."""
        if self.mqtt_password is not None:
            return self.mqtt_password.get_secret_value()
        if self.mqtt_password_file is not None:
            return read_secret(self.mqtt_password_file)
        return None


def read_secret(path: Path) -> str:
    """A password file's content without the trailing newline editors add."""
    return path.read_text().strip()
