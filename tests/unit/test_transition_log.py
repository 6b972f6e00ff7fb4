"""Transition log lines: one per transition normally, one per kind in a mass event."""

from __future__ import annotations

import logging

import pytest

from monitor.liveness.states import Reason, State, Transition
from monitor.transition_log import LOG_EACH_UP_TO, log_transitions

LOG = logging.getLogger("clawbeat.test.transitions")


def _late(i: int) -> Transition:
    return Transition(f"dev-{i:05d}", State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS, 0.0, "s")


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_a_few_transitions_get_a_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    batch = [_late(i) for i in range(LOG_EACH_UP_TO)]
    batch[0] = Transition("dev-new", None, State.ONLINE, Reason.FIRST_SEEN, 0.0, "s")
    log_transitions(LOG, batch)
    lines = _info_lines(caplog)
    assert len(lines) == LOG_EACH_UP_TO
    assert lines[0] == "device dev-new: new -> online (first-seen)"
    assert lines[1] == "device dev-00001: online -> late (missed-heartbeats)"


def test_a_mass_event_is_one_line_per_kind_with_counts_and_every_device_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    batch = [_late(i) for i in range(1000)]
    batch += [
        Transition(f"gone-{i}", State.STALE, State.LOST, Reason.GONE, 0.0, None) for i in range(3)
    ]
    log_transitions(LOG, batch)
    assert _info_lines(caplog) == [
        "1,000 devices: online -> late (missed-heartbeats): "
        "dev-00000, dev-00001, dev-00002, dev-00003, dev-00004 and 995 more",
        "3 devices: stale -> lost (gone): gone-0, gone-1, gone-2",
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 1003
    assert "device dev-00999: online -> late (missed-heartbeats)" in debug


def test_nothing_is_formatted_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    log_transitions(LOG, [_late(i) for i in range(100)])
    assert not caplog.records
