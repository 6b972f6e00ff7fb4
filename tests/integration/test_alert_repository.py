"""Alerting tables on real PostgreSQL and SQLite: uniqueness, compare-and-set, the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.alerts import api, repository
from monitor.alerts.errors import (
    AlertNotFound,
    AlreadyAcknowledged,
    ChannelExists,
    ChannelNotFound,
    InvalidChannelUrl,
    InvalidRule,
    InvalidSchedule,
    WindowNotFound,
)
from monitor.alerts.repository import NewDelivery
from monitor.alerts.schedule import Scope
from tests.harness.db_fixtures import open_store

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HOOK = "json://127.0.0.1:9/hook"


def alert_values(key: str, device: str, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "open_key": f"device:{device}",
        "kind": "device",
        "device_id": device,
        "state": "offline",
        "reason": "connection-lost",
        "severity": "critical",
        "status": "open",
        "title": f"{device} is offline",
        "channels": ["hook"],
        "opened_at": T0,
        "updated_at": T0,
        "last_notified_at": T0,
        **extra,
    }


async def test_channels_and_rules(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        await api.add_channel(s, name="hook", url="json://user:s3cret@127.0.0.1:9/x", now=T0)
        with pytest.raises(ChannelExists):
            await api.add_channel(s, name="hook", url=HOOK, now=T0)
        await api.add_channel(s, name="hook", url=HOOK, replace=True, description="d", now=T0)
        with pytest.raises(InvalidChannelUrl) as bad:
            await api.add_channel(s, name="bad", url="nonsense://secret-token@x", now=T0)
        assert "secret-token" not in str(bad.value)
        await s.commit()
        (channel,) = await api.list_channels(s)
        assert (channel.url, channel.description) == (HOOK, "d")
        view = api.channel_view(channel)
        assert view.scheme == "json"
        await api.add_channel(s, name="mail", url="mailto://u:pw@example.com?to=o@example.com")
        assert "pw" not in api.channel_view(await repository.get_channel(s, name="mail")).url

        with pytest.raises(InvalidRule, match="no such channel"):
            await api.put_rule(s, name="r", channels=["hook", "pager"])
        await api.put_rule(s, name="r", channels=["hook"], classes=["critical"], tags=["t"])
        await api.put_rule(s, name="r", channels=["mail"], min_severity="warning")
        await s.commit()
        (rule,) = await repository.load_rules(s)
        assert (rule.channels, rule.classes, rule.min_severity.value) == (
            ("mail",),
            frozenset(),
            "warning",
        )
        await api.remove_channel(s, name="mail")
        with pytest.raises(ChannelNotFound):
            await api.remove_channel(s, name="mail")
        assert await repository.channel_names(s) == ["hook"]


async def test_at_risk_rules_and_alerts(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        await api.add_channel(s, name="hook", url=HOOK, now=T0)
        with pytest.raises(InvalidRule, match="min_risk is elevated or high"):
            await api.put_rule(s, name="r", channels=["hook"], kind="at-risk", min_risk="low")
        with pytest.raises(InvalidRule, match="of kind at-risk only"):
            await api.put_rule(s, name="r", channels=["hook"], min_risk="high")
        with pytest.raises(InvalidRule, match="do not escalate"):
            await api.put_rule(s, name="r", channels=["hook"], kind="at-risk", escalate_to=["hook"])
        with pytest.raises(InvalidRule, match="kind is state or at-risk"):
            await api.put_rule(s, name="r", channels=["hook"], kind="risky")
        await api.put_rule(s, name="risky", channels=["hook"], kind="at-risk")
        await api.put_rule(s, name="state", channels=["hook"])
        await s.commit()
        rules = {r.name: r for r in await repository.load_rules(s)}
        assert (rules["risky"].kind, rules["risky"].min_risk) == ("at-risk", "high")
        assert (rules["state"].kind, rules["state"].min_risk) == ("state", None)

        # A device can have its state alert and its at-risk alert open at once; a
        # forgotten device loses both.
        assert await repository.insert_alert(s, values=alert_values("pump:1", "pump")) is not None
        risky = alert_values(
            "pump:at-risk:1", "pump", open_key="at-risk:pump", kind="at-risk", severity="warning"
        )
        assert await repository.insert_alert(s, values=risky) is not None
        risky_again = {**risky, "key": "pump:at-risk:2"}
        assert await repository.insert_alert(s, values=risky_again) is None
        assert await repository.resolve_forgotten(s, device_id="pump", now=T0) == 2
        await s.commit()
        assert await repository.load_open_alerts(s) == []


async def test_one_open_alert_per_device_and_idempotent_inserts(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        first = await repository.insert_alert(s, values=alert_values("pump:1", "pump"))
        assert first is not None
        # A retried insert (same key) and a second open alert for the device: nothing.
        assert await repository.insert_alert(s, values=alert_values("pump:1", "pump")) is None
        assert await repository.insert_alert(s, values=alert_values("pump:2", "pump")) is None
        await s.commit()
        # Resolved (compare-and-set on status), the device can open a new one.
        resolve = {"status": "resolved", "open_key": None, "resolved_at": T0}
        assert await repository.update_alert_if(
            s, alert_id=first, expect={"status": "open"}, values=resolve
        )
        assert not await repository.update_alert_if(
            s, alert_id=first, expect={"status": "open"}, values=resolve
        )
        second = await repository.insert_alert(s, values=alert_values("pump:2", "pump"))
        assert second is not None
        await s.commit()
        found = await repository.find_open(s, open_key="device:pump")
        assert found is not None
        assert found.id == second
        assert [a.id for a in await repository.load_open_alerts(s)] == [second]


async def test_acknowledge_is_compare_and_set_and_stops_follow_ups(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        alert_id = await repository.insert_alert(s, values=alert_values("a:1", "a"))
        assert alert_id is not None
        await s.commit()
        assert [a.id for a in await repository.followup_candidates(s)] == [alert_id]
        # Only those whose repeat or escalation may be due.
        due = repository.followup_candidates
        assert await due(s, now=T0 + timedelta(seconds=59), repeat_every=60) == []
        assert len(await due(s, now=T0 + timedelta(seconds=60), repeat_every=60)) == 1
        assert len(await due(s, now=T0 + timedelta(seconds=60), escalate_after=30)) == 1
        assert await due(s, now=T0 + timedelta(days=1)) == []  # both off
        acked = await api.acknowledge(s, alert_id=alert_id, by="alice", now=T0)
        assert acked.acknowledged_by == "alice"
        with pytest.raises(AlreadyAcknowledged, match="alice"):
            await api.acknowledge(s, alert_id=alert_id, by="bob", now=T0)
        with pytest.raises(AlertNotFound):
            await api.acknowledge(s, alert_id=alert_id + 100, by="bob", now=T0)
        await s.commit()
        # The repeat pass read the alert before the ack: its compare-and-set loses.
        assert not await repository.update_alert_if(
            s,
            alert_id=alert_id,
            expect={"status": "open", "acknowledged_at": None, "repeats": 0},
            values={"repeats": 1},
        )
        assert await repository.followup_candidates(s) == []
        snoozed = await api.snooze(s, alert_id=alert_id, duration=timedelta(hours=1), now=T0)
        assert snoozed.snoozed_until == T0 + timedelta(hours=1)


async def test_the_outbox_claims_once_retries_and_gives_up(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        async with sessions() as s:
            await api.add_channel(s, name="hook", url=HOOK, now=T0)
            alert_id = await repository.insert_alert(s, values=alert_values("a:1", "a"))
            assert alert_id is not None
            rows = [
                NewDelivery(f"a:1:down:{c}", alert_id, c, "down", "t", "b", "failure")
                for c in ("hook", "gone")
            ]
            await repository.insert_deliveries(s, rows=rows, now=T0)
            await repository.insert_deliveries(s, rows=rows, now=T0)  # deduplicated
            await s.commit()
            assert await repository.delivery_counts(s) == {"pending": 2}

        # Two workers race for the same rows: each row goes to exactly one.
        async with sessions() as one, sessions() as two:
            got_one = await repository.claim_due(one, now=T0, token="w1", lease=30)
            await one.commit()
            got_two = await repository.claim_due(two, now=T0, token="w2", lease=30)
            await two.commit()
        assert sorted(c.channel for c in got_one) == ["gone", "hook"]
        assert got_two == []
        by_channel = {c.channel: c for c in got_one}
        assert by_channel["hook"].url == HOOK
        assert by_channel["gone"].url is None  # the channel does not exist
        assert by_channel["hook"].attempts == 1

        async with sessions() as s:
            hook, gone = by_channel["hook"].id, by_channel["gone"].id
            # Only the claimant records an outcome.
            assert not await repository.mark_sent(s, delivery_id=hook, token="w2", now=T0)
            assert await repository.mark_failed(
                s, delivery_id=hook, token="w1", error="refused", retry_at=T0 + timedelta(5)
            )
            assert await repository.mark_failed(
                s, delivery_id=gone, token="w1", error="no channel", retry_at=None
            )
            await s.commit()
            assert await repository.claim_due(s, now=T0, token="w1", lease=30) == []
            assert await repository.next_due(s) == T0 + timedelta(5)
            assert await repository.delivery_counts(s) == {"pending": 1, "failed": 1}
            (failed,) = await api.list_deliveries(s, state="failed")
            assert failed.last_error == "no channel"
            assert await api.retry_delivery(s, delivery_id=gone, now=T0)
            assert not await api.retry_delivery(s, delivery_id=gone, now=T0)
            await s.commit()

        # A claim whose lease ran out (its worker died mid-send) is claimed again.
        later = T0 + timedelta(days=6)
        async with sessions() as s:
            claimed = await repository.claim_due(s, now=later, token="w3", lease=1)
            await s.commit()
            assert sorted(c.id for c in claimed) == sorted([hook, gone])
            again = await repository.claim_due(
                s, now=later + timedelta(seconds=2), token="w4", lease=30
            )
            await s.commit()
            assert sorted(c.id for c in again) == sorted([hook, gone])
            assert {c.attempts for c in again if c.id == hook} == {3}
            assert await repository.mark_sent(s, delivery_id=hook, token="w4", now=later)
            await repository.release_claims(s, token="w4", ids=[gone])
            await s.commit()
            assert await repository.delivery_counts(s) == {"sent": 1, "pending": 1}


async def test_each_channel_is_a_queue_an_older_delivery_in_backoff_holds_newer_ones(
    database_url: str,
) -> None:
    async with open_store(database_url) as sessions:
        async with sessions() as s:
            await api.add_channel(s, name="hook", url=HOOK, now=T0)
            await api.add_channel(s, name="mail", url=HOOK, now=T0)
            alert_id = await repository.insert_alert(s, values=alert_values("q:1", "q"))
            assert alert_id is not None
            rows = [
                NewDelivery(f"q:{n}:{event}:{c}", alert_id, c, event, event, "b", "failure")
                for n, event in enumerate(("down", "escalated", "worse", "recovered"))
                for c in ("hook", "mail")
            ]
            await repository.insert_deliveries(s, rows=rows, now=T0)
            await s.commit()

        async def claim(at: datetime, token: str) -> list[tuple[str, str]]:
            async with sessions() as s:
                got = await repository.claim_due(s, now=at, token=token, lease=30)
                await s.commit()
            return sorted((c.channel, c.event) for c in got)

        # One per channel, the oldest, though all are due.
        first = await claim(T0, "w1")
        assert first == [("hook", "down"), ("mail", "down")]
        async with sessions() as s:
            ids = {(d.channel, d.event): d.id for d in await api.list_deliveries(s, limit=None)}
            # The hook fails and backs off; the mail goes through.
            assert await repository.mark_failed(
                s,
                delivery_id=ids["hook", "down"],
                token="w1",
                error="refused",
                retry_at=T0 + timedelta(seconds=60),
            )
            assert await repository.mark_sent(
                s, delivery_id=ids["mail", "down"], token="w1", now=T0
            )
            await s.commit()
            # The hook's newer deliveries are due but wait behind the one in backoff.
            assert await repository.next_due(s) == T0
        for n, event in enumerate(("escalated", "worse", "recovered")):
            assert await claim(T0 + timedelta(seconds=1), f"m{n}") == [("mail", event)]
            async with sessions() as s:
                assert await repository.mark_sent(
                    s, delivery_id=ids["mail", event], token=f"m{n}", now=T0
                )
                await s.commit()
        async with sessions() as s:
            assert await repository.next_due(s) == T0 + timedelta(seconds=60)
        # The hook is back: its queue drains oldest first.
        order = []
        at = T0 + timedelta(seconds=61)
        for n in range(4):
            (got,) = [c for c in await claim(at, f"h{n}") if c[0] == "hook"]
            order.append(got[1])
            async with sessions() as s:
                assert await repository.mark_sent(s, delivery_id=ids[got], token=f"h{n}", now=at)
                await s.commit()
        assert order == ["down", "escalated", "worse", "recovered"]


async def test_a_given_up_delivery_does_not_hold_its_channel(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        await api.add_channel(s, name="hook", url=HOOK, now=T0)
        alert_id = await repository.insert_alert(s, values=alert_values("g:1", "g"))
        assert alert_id is not None
        rows = [
            NewDelivery(f"g:{e}:hook", alert_id, "hook", e, e, "b", "failure")
            for e in ("down", "recovered")
        ]
        await repository.insert_deliveries(s, rows=rows, now=T0)
        await s.commit()
        (down,) = await repository.claim_due(s, now=T0, token="w1", lease=30)
        assert await repository.mark_failed(
            s, delivery_id=down.id, token="w1", error="gone", retry_at=None
        )
        await s.commit()
        (recovered,) = await repository.claim_due(s, now=T0, token="w2", lease=30)
        assert recovered.event == "recovered"


async def test_maintenance_windows_and_mutes(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as s:
        scope = api.scope_of(devices=["pump"], tags=["line-3"])
        with pytest.raises(InvalidSchedule):
            api.scope_of()
        once = await api.add_maintenance(s, scope=scope, duration=timedelta(hours=1), now=T0)
        weekly = await api.add_maintenance(
            s,
            scope=api.scope_of(everything=True),
            every="mon-fri 02:00",
            duration=timedelta(hours=2),
            tz="Europe/Berlin",
            note="patching",
            now=T0,
        )
        with pytest.raises(InvalidSchedule):
            await api.add_maintenance(s, scope=scope, every="mon 02:00", now=T0)
        with pytest.raises(InvalidSchedule):
            await api.add_maintenance(s, scope=scope, ends_at=T0 - timedelta(hours=1), now=T0)
        mute = await api.add_mute(
            s, scope=Scope.of(classes=["critical"]), duration=timedelta(minutes=30), now=T0
        )
        await s.commit()

        quiet = await repository.load_quiet(s, now=T0)
        assert [w.id for w in quiet.windows] == [once.id, weekly.id]
        assert [m.id for m in quiet.mutes] == [mute.id]
        at = T0 + timedelta(minutes=10)
        assert quiet.silenced_by("pump", "default", frozenset(), at) == f"maintenance #{once.id}"
        assert quiet.silenced_by("x", "critical", frozenset(), at) == f"mute #{mute.id}"
        assert quiet.silenced_by("x", "default", frozenset(), at) is None

        await api.end_maintenance(s, window_id=once.id, now=at)
        await api.end_maintenance(s, window_id=once.id, now=at)  # ending twice is harmless
        await api.end_mute(s, mute_id=mute.id, now=at)
        with pytest.raises(WindowNotFound):
            await api.end_maintenance(s, window_id=999, now=at)
        await s.commit()
        assert [w.id for w in await api.list_maintenance(s, now=at)] == [weekly.id]
        assert len(await api.list_maintenance(s, now=at, include_finished=True)) == 2
        assert await api.list_mutes(s, now=at) == []
