"""Request and response bodies of the HTTP API (they are the OpenAPI document).

Times are ISO 8601 UTC. Bodies refuse unknown fields (a typo is a 422, not a silent
no-op). Numbers are finite: ``NaN``/``Infinity`` are refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from device_client.protocol import MAX_INTERVAL, MIN_INTERVAL
from monitor.liveness.clock import TOLERANCE as CLOCK_TOLERANCE
from monitor.liveness.policy import DEFAULT_GRACE, DEFAULT_LOST_AFTER, DEFAULT_MISSED_LIMIT
from monitor.liveness.states import Reason, State
from monitor.store.tokens import TokenScope
from monitor.web.series import Range

ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
TAG_PATTERN: Final = r"^[A-Za-z0-9._:=-]{1,64}$"

DeviceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Interval = Annotated[float, Field(ge=MIN_INTERVAL, le=MAX_INTERVAL, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=10 * 365 * 86_400, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, le=100 * 365 * 86_400, allow_inf_nan=False)]


class OutModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


def _hide_null(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Document the ``not_null`` fields as optional but not nullable."""
    names: tuple[str, ...] = getattr(model, "not_null", ())
    for name in names:
        prop = schema["properties"][model.model_fields[name].alias or name]
        branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            del prop["anyOf"]
            prop.update(branches[0])
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class InModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", json_schema_extra=_hide_null)

    # Optional fields for which null means nothing: absent is fine, null is a 422.
    not_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _refuse_nulls(self) -> InModel:
        for name in self.not_null:
            if name in self.model_fields_set and getattr(self, name) is None:
                field = type(self).model_fields[name]
                raise ValueError(f"{field.alias or name} cannot be null (leave it out instead)")
        return self


class FieldError(BaseModel):
    location: str = Field(description="Where: body.interval, query.limit, path.device_id, ...")
    message: str


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, for a human")
    errors: list[FieldError] | None = Field(None, description="Per field, for invalid input")


# --- devices ------------------------------------------------------------------------


class RiskOut(OutModel):
    level: Literal["low", "elevated", "high"] = Field(
        description="high: likely to drop off within the hour; elevated: within a day"
    )
    mode: Literal["rules", "model"] = Field(
        description="rules: transparent limits (before enough history); model: learned"
    )
    score: float = Field(
        description="Rules: the strongest signal against its limit (1 = at the limit). "
        "Model: the larger probability over its threshold (>= 1 = flagged)"
    )
    within_1h: float | None = Field(
        None, description="Probability of going stale, offline or lost within 1 h (model only)"
    )
    within_24h: float | None = Field(None, description="... within 24 h (model only)")
    scored_at: datetime


class DeviceOut(OutModel):
    id: str
    state: State = Field(description="Live state, from the running monitor")
    since: datetime = Field(description="When the device entered its state")
    reason: Reason | None = None
    session: str | None = None
    last_seen: datetime | None = Field(None, description="Last fresh heartbeat received")
    last_seq: int | None = None
    class_name: str = Field(alias="class")
    interval: float | None = Field(
        None, description="Seconds the monitor expects between heartbeats (None: not tracked)"
    )
    interval_override: float | None = Field(None, description="Set by an operator")
    announced_interval: float | None = Field(None, description="What the device says it uses")
    tags: list[str] = Field(default_factory=list)
    maintenance: bool = False
    fw: str | None = None
    first_seen: datetime | None = None
    confirmed: bool = Field(
        False, description="Heard from since the monitor started (not only a persisted state)"
    )
    risk: RiskOut | None = Field(
        None,
        description="Risk of dropping off (docs/prediction.md); null when not scored: "
        "down, in maintenance, not heard since start, or scoring off",
    )
    risk_reasons: list[str] = Field(
        default_factory=list, description="The two or three signals behind an elevated risk"
    )
    clock_offset: float | None = Field(
        None,
        description="Estimated device clock minus the monitor's, seconds (positive: the "
        "device runs ahead), from its heartbeats' ts; null until a heartbeat of its "
        f"current session carried one. Beyond {CLOCK_TOLERANCE:g} s it is taken out of "
        "latency figures.",
    )
    clock_skewed: bool = Field(
        False,
        description=f"The clock offset is beyond {CLOCK_TOLERANCE:g} s: the device's clock "
        "is wrong",
    )


class DevicePage(OutModel):
    total: int = Field(description="Devices matching the filter")
    limit: int
    offset: int
    items: list[DeviceOut]


class TransitionOut(OutModel):
    at: datetime
    old_state: str | None
    new_state: str
    reason: str | None
    session: str | None


class TransitionPage(OutModel):
    total: int
    limit: int
    offset: int
    items: list[TransitionOut] = Field(description="Newest first")


class UptimeOut(OutModel):
    window: Literal["24h", "7d", "30d"]
    percent: float | None = Field(
        description="up / (up + down) x 100; null when no time in the window counted"
    )
    up_seconds: float
    down_seconds: float


class DeviceDetail(DeviceOut):
    metrics: dict[str, Any] | None = Field(None, description="Latest metrics the device sent")
    uptime: list[UptimeOut]
    timeline: list[TransitionOut] = Field(description="Most recent transitions, newest first")


class DevicePatch(InModel):
    """Fields to change; absent fields are left alone."""

    interval: Interval | None = Field(
        None,
        description="Interval override in seconds, pushed to the device on its retained "
        "config topic; null removes the override",
    )
    class_name: DeviceId | None = Field(None, alias="class")
    tags: list[Tag] | None = Field(None, max_length=32)
    maintenance: bool | None = None

    not_null = ("class_name", "tags", "maintenance")


# --- heartbeat charts ---------------------------------------------------------------


class PointOut(OutModel):
    t: datetime = Field(description="Start of the bucket")
    count: int = Field(description="Heartbeats received")
    per_minute: float
    missed: int = Field(
        description="Heartbeats owed but not received, counted while missed, inside one "
        "session (never across a shutdown, reconnect, monitor restart or blind period)"
    )
    latency_avg_ms: float | None = Field(description="Device timestamp to monitor receipt")
    latency_max_ms: float | None
    jitter_avg_ms: float | None = Field(description="Inter-arrival time minus the interval")
    jitter_max_ms: float | None


class SeriesOut(OutModel):
    range: Range
    start: datetime
    end: datetime
    bucket_seconds: int
    points: list[PointOut]


# --- fleet --------------------------------------------------------------------------


class SummaryOut(OutModel):
    total: int
    counts: dict[State, int] = Field(description="Devices per state (every state listed)")
    at: datetime
    broker_connected: bool
    warming_up: bool
    instance: str
    started_at: datetime


class ClassOut(OutModel):
    name: str
    interval: float | None = Field(description="null: each device's announced interval")
    grace: float
    missed_limit: int
    lost_after: float | None = Field(description="null: never lost")
    description: str
    devices: int = Field(description="Devices in the class")


class ClassIn(InModel):
    interval: Interval | None = None
    grace: Seconds = DEFAULT_GRACE
    missed_limit: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_MISSED_LIMIT
    lost_after: PositiveSeconds | None = DEFAULT_LOST_AFTER
    description: Annotated[str, Field(max_length=1_000)] = ""


class ClassPatch(InModel):
    """Fields to change; absent fields keep their values. ``interval`` and
    ``lost_after`` may be null (trust devices / never lost); the others may not."""

    interval: Interval | None = None
    grace: Seconds | None = None
    missed_limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    lost_after: PositiveSeconds | None = None
    description: Annotated[str, Field(max_length=1_000)] | None = None

    not_null = ("grace", "missed_limit", "description")


class MeOut(OutModel):
    name: str
    scope: TokenScope


# --- health -------------------------------------------------------------------------


class LiveOut(OutModel):
    status: Literal["ok"] = "ok"


class CheckOut(OutModel):
    ok: bool
    detail: str


class ReadyOut(OutModel):
    ready: bool
    checks: dict[str, CheckOut]
