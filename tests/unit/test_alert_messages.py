"""What notifications say: open alerts tell how to acknowledge, resolved ones do not."""

from __future__ import annotations

from monitor.alerts.core import DeviceState, Event
from monitor.alerts.levels import Severity
from monitor.alerts.messages import device_message

WALL = 1_800_000_000.0


def test_open_alerts_say_how_to_acknowledge_and_resolutions_do_not() -> None:
    down = DeviceState("pump", "offline", "connection-lost", WALL)
    up = DeviceState("pump", "online", "heartbeat", WALL + 60)
    for event in (Event.DOWN, Event.WORSE, Event.FLAPPING):
        body = device_message(event, alert_id=7, device=down, severity=Severity.CRITICAL).body
        assert body.endswith("Alert #7. Acknowledge: clawbeat alerts ack 7")
    still_down = device_message(Event.STABLE, alert_id=7, device=down, severity=Severity.CRITICAL)
    assert "clawbeat alerts ack 7" in still_down.body
    for event in (Event.RECOVERED, Event.STABLE):
        message = device_message(
            event,
            alert_id=7,
            device=up,
            severity=Severity.CRITICAL,
            down_since=WALL,
            resolved=True,
        )
        assert "Acknowledge" not in message.body
        assert message.body.endswith("Alert #7 is resolved.")
    recovered = device_message(
        Event.RECOVERED, alert_id=7, device=up, severity=Severity.CRITICAL, down_since=WALL
    )
    assert "after 1m" in recovered.body
    assert "Acknowledge" not in recovered.body
