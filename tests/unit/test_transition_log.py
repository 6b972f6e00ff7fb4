"""Transition log lines: one each within a per-window budget, one per kind beyond it."""

from __future__ import annotations

import logging

import pytest

from monitor.liveness.states import Reason, State, Transition
from monitor.transition_log import LOG_EACH_UP_TO, WINDOW, TransitionLog

LOG = logging.getLogger("clawbeat.test.transitions")


def _late(i: int) -> Transition:
    return Transition(f"dev-{i:05d}", State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS, 0.0, "s")


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_a_few_transitions_get_a_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    batch = [_late(i) for i in range(LOG_EACH_UP_TO)]
    batch[0] = Transition("dev-new", None, State.ONLINE, Reason.FIRST_SEEN, 0.0, "s")
    TransitionLog(LOG).log(batch, 0.0)
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
    TransitionLog(LOG).log(batch, 0.0)
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
    TransitionLog(LOG).log([_late(i) for i in range(100)], 0.0)
    assert not caplog.records


def test_small_batches_share_one_budget_per_window(caplog: pytest.LogCaptureFixture) -> None:
    # A fleet connecting over a ramp: one transition at a time, 0.01 s apart.
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    tlog = TransitionLog(LOG)
    first = [
        Transition(f"dev-{i:05d}", None, State.ONLINE, Reason.FIRST_SEEN, 0.0, "s")
        for i in range(LOG_EACH_UP_TO + 30)
    ]
    for i, tr in enumerate(first):
        tlog.log([tr], i * 0.01)
    lines = _info_lines(caplog)
    assert len(lines) == LOG_EACH_UP_TO
    assert lines[-1] == f"device dev-{LOG_EACH_UP_TO - 1:05d}: new -> online (first-seen)"
    tlog.flush(WINDOW - 0.01)  # the window is not over yet
    assert len(_info_lines(caplog)) == LOG_EACH_UP_TO
    tlog.flush(WINDOW)
    assert _info_lines(caplog)[LOG_EACH_UP_TO:] == [
        "30 devices: new -> online (first-seen): "
        "dev-00020, dev-00021, dev-00022, dev-00023, dev-00024 and 25 more"
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 30  # the held-back ones, each still at DEBUG
    # A new window has a new budget.
    tlog.log([_late(1)], WINDOW + 1)
    assert _info_lines(caplog)[-1] == "device dev-00001: online -> late (missed-heartbeats)"


def test_a_forced_flush_logs_what_the_window_held(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    tlog = TransitionLog(LOG)
    for i in range(LOG_EACH_UP_TO + 2):
        tlog.log([_late(i)], 0.0)
    tlog.flush(0.0, force=True)  # the monitor stopping
    assert (
        _info_lines(caplog)[-1]
        == "2 devices: online -> late (missed-heartbeats): dev-00020, dev-00021"
    )
    tlog.flush(0.0, force=True)
    assert len(_info_lines(caplog)) == LOG_EACH_UP_TO + 1
