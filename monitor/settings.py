"""Monitor settings: environment variables prefixed ``CLAWBEAT_``, overridable by CLI flags.

Built once in ``main()`` and passed down, never a module global, so tests inject their
own broker and database URLs. Secrets may come from files: ``CLAWBEAT_MQTT_PASSWORD_FILE``
and ``CLAWBEAT_DATABASE_URL_FILE`` (Docker/systemd credentials), as in healthchecks'
``envsecret``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from device_client.protocol import DEFAULT_TOPIC_ROOT, validate_topic_root
from monitor.cluster.partitions import DEFAULT_PARTITIONS, MAX_PARTITIONS
from monitor.liveness.policy import (
    DEFAULT_GRACE,
    DEFAULT_INTERVAL,
    DEFAULT_LOST_AFTER,
    DEFAULT_MISSED_LIMIT,
    DEFAULT_WILL_HOLD,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./clawbeat.db"


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWBEAT_", extra="ignore")

    # repr=False: both URLs may carry a password.
    mqtt_url: str = Field(
        "mqtt://monitor@127.0.0.1:1883",
        description="broker URL, mqtt://user:pass@host:port or mqtts:// for TLS; several, "
        "comma-separated, for the nodes of a broker cluster",
        repr=False,
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version; 3.1.1 for brokers without MQTT 5 (nats-server)"
    )
    mqtt_password: SecretStr | None = Field(None, description="overrides the URL's password")
    mqtt_client_id: str | None = Field(None, description="default: the username")
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_keepalive: int = Field(10, ge=2, le=300)
    mqtt_session_expiry: int = Field(
        600,
        ge=0,
        le=86_400,
        description="seconds the broker keeps the monitor's session and queue after a drop",
    )
    link_probe_timeout: float | None = Field(
        None, gt=0, le=300, description="default: a third of the smallest grace, 1 s to keepalive"
    )
    mqtt_report_every: float = Field(
        60.0, gt=0, le=3600, description="repeat 'cannot connect' at most this often (seconds)"
    )
    topic_root: str = DEFAULT_TOPIC_ROOT

    database_url: str = Field(DEFAULT_DATABASE_URL, repr=False)
    partitions: int = Field(
        DEFAULT_PARTITIONS,
        ge=1,
        le=MAX_PARTITIONS,
        description="cluster partitions of the fleet; fixed per deployment (docs/cluster.md)",
    )
    # Cluster mode (docs/cluster.md): replicas on PostgreSQL share the fleet by leases.
    # Opt-in: a cluster fences every write by a lease, so a replica cut off from the
    # database past its lease goes quiet, while a monitor alone keeps judging and
    # publishing from memory through a database outage and writes it all afterwards.
    cluster: bool = Field(
        False, description="a replica sharing the fleet with others by leases (PostgreSQL)"
    )
    replica: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="this replica's name in the cluster; default: host name and process id",
    )
    lease_ttl: float = Field(10.0, gt=0, le=600, description="seconds a partition lease lasts")
    lease_renew_every: float = Field(2.0, gt=0, le=300, description="lease renewal period")
    lease_margin: float = Field(
        2.0, ge=0, le=300, description="stop acting this long before an unrenewed lease ends"
    )
    partition_topics: bool = Field(
        False,
        description="the broker routes devices to {root}/partitions/{p}/... (NATS subject "
        "mapping): subscribe only to the partitions this replica owns",
    )

    sources_file: Path | None = Field(
        None, description="TOML file of sources in other conventions (docs/adapters.md)"
    )
    sparkplug_host_url: SecretStr | None = Field(
        None,
        description="broker URL (a user of its own) for the Sparkplug primary host STATE topic",
    )

    # Home Assistant MQTT discovery (monitor/homeassistant; docs/homeassistant.md).
    homeassistant_discovery: bool = Field(
        False, description="publish Home Assistant MQTT discovery for every device"
    )
    homeassistant_prefix: str = Field(
        "homeassistant", description="Home Assistant's discovery prefix"
    )
    homeassistant_rate: float = Field(
        200.0, gt=0, description="devices per second whose discovery is (re)published, at most"
    )

    default_interval: float = Field(DEFAULT_INTERVAL, gt=0, description="when nothing else says")
    grace: float = Field(DEFAULT_GRACE, ge=0, description="default class grace, seconds")
    missed_limit: int = Field(
        DEFAULT_MISSED_LIMIT, ge=1, description="default class missed heartbeats -> stale"
    )
    lost_after: float = Field(
        DEFAULT_LOST_AFTER, gt=0, description="stale/offline this long -> lost"
    )
    will_hold: float = Field(
        DEFAULT_WILL_HOLD, ge=0, description="hold a will this long for a reconnect"
    )
    warmup: float | None = Field(None, ge=0, description="default: longest interval + grace")

    flush_interval: float = Field(1.0, gt=0, le=60)
    rollup_interval: float = Field(
        10.0, gt=0, le=60, description="how often per-minute heartbeat figures are written"
    )
    summary_interval: float = Field(5.0, gt=0, le=60)
    status_refresh: float = Field(
        60.0, gt=0, le=86_400, description="republish a beating device's status at most this often"
    )
    status_refresh_rate: float = Field(
        1000.0, gt=0, description="status refreshes per second, fleet-wide, at most"
    )
    tick_interval: float = Field(0.1, gt=0, le=1)

    # Alerting (monitor/alerts; docs/operations.md "Alerting").
    alert_on_shutdown: bool = Field(False, description="alert when a device announces shutdown")
    alert_late: bool = Field(False, description="late opens warning alerts (rules route them)")
    storm_window: float = Field(
        10.0, ge=0, le=3600, description="seconds a drop is held; drops within it are grouped"
    )
    storm_share: float = Field(
        0.2, gt=0, le=1, description="share of the fleet dropping within storm_window = outage"
    )
    storm_min_devices: int = Field(5, ge=2, description="an outage has at least this many")
    flap_changes: int = Field(6, ge=0, description="more changes in flap_window: flapping; 0 off")
    flap_window: float = Field(600.0, gt=0, description="seconds; also the quiet to be stable")
    repeat_every: float = Field(3600.0, ge=0, description="re-notify open alerts; 0 never")
    escalate_after: float = Field(900.0, ge=0, description="unacknowledged -> escalate; 0 never")
    alert_retry_base: float = Field(5.0, gt=0, description="first delivery retry after, seconds")
    alert_retry_cap: float = Field(900.0, gt=0, description="longest delivery retry wait")
    alert_max_attempts: int = Field(20, ge=1, description="delivery attempts before giving up")
    alert_send_timeout: float = Field(30.0, gt=0, description="seconds per delivery attempt")
    alert_poll_interval: float = Field(
        1.0, gt=0, le=60, description="rules/windows reload and repeat check period"
    )

    # At-risk scoring (monitor/risk; docs/prediction.md).
    risk_cycle: float = Field(
        60.0, ge=0, le=3600, description="score every device's risk this often, seconds; 0 off"
    )
    risk_retrain: float = Field(
        21_600.0, ge=60, description="retrain the risk model this often, seconds"
    )
    risk_min_outages: int = Field(
        20, ge=1, description="devices that dropped off in the kept history before a model"
    )

    http_bind: str = Field(
        "127.0.0.1:8080",
        description="HOST:PORT of the HTTP API, dashboard and /metrics; empty disables",
    )
    http_tls_cert: Path | None = Field(None, description="serve HTTPS with this certificate")
    http_tls_key: Path | None = Field(None, description="private key of http_tls_cert")
    http_metrics_auth: bool = Field(False, description="require a read token for /metrics")
    http_ready_max_lag: float = Field(
        30.0, gt=0, description="/health/ready fails when unwritten data is older than this"
    )
    http_max_body: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest request body, bytes"
    )
    http_body_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds a request body has to arrive in full"
    )

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _tls_pair(self) -> MonitorSettings:
        if (self.http_tls_cert is None) != (self.http_tls_key is None):
            raise ValueError("http_tls_cert and http_tls_key must be given together")
        if self.mqtt_key_file is not None and self.mqtt_cert_file is None:
            # The key may sit inside the certificate file, but not the other way round.
            raise ValueError("mqtt_key_file needs mqtt_cert_file")
        return self

    @model_validator(mode="after")
    def _lease_timing(self) -> MonitorSettings:
        # Two renewals must fit before a replica stops acting (monitor/cluster/keeper.py).
        if 2 * self.lease_renew_every + self.lease_margin > self.lease_ttl:
            raise ValueError("lease timing needs 2 * lease_renew_every + lease_margin <= lease_ttl")
        if self.cluster and not self.database_url.startswith("postgresql"):
            raise ValueError("cluster mode needs PostgreSQL: SQLite is single-replica")
        return self

    @field_validator("homeassistant_prefix")
    @classmethod
    def _ha_prefix(cls, value: str) -> str:
        # A topic to publish under: no wildcards, no empty level, no leading '/'.
        levels = value.split("/")
        if not value or any(not level or "+" in level or "#" in level for level in levels):
            raise ValueError(
                "must be a topic such as 'homeassistant' (no wildcards, no empty level)"
            )
        if "\x00" in value:
            raise ValueError("must not contain NUL")
        return value

    @field_validator("topic_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return validate_topic_root(value)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name in ("mqtt_password", "database_url", "sparkplug_host_url"):
            path = os.environ.get(f"CLAWBEAT_{name.upper()}_FILE")
            if path and data.get(name) is None:
                data[name] = Path(path).read_text().strip()
        return data


def settings_problem(exc: ValidationError) -> str:
    """One line naming each bad setting and what is wrong, never the values given.

    pydantic's own message quotes the input, which for a model-level check is every
    setting, the broker and database URLs with their passwords included.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        where = f"CLAWBEAT_{field.upper()}" if field else "settings"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid " + "; ".join(problems)
