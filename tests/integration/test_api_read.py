"""Read endpoints of the HTTP API against the real monitor, broker and database.

Every test runs on SQLite and PostgreSQL (the tag filter and the rollup sums are
spelled differently per dialect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.harness.api import FakeDevice, RunningMonitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio


@pytest.fixture
def devices(broker: TestBroker) -> Iterator[dict[str, FakeDevice]]:
    made = {name: FakeDevice(broker, name) for name in ("alpha-1", "alpha-2", "beta-1", "gamma_x")}
    yield made
    for device in made.values():
        device.close()


@pytest.fixture
async def reader(monitor_api: RunningMonitor) -> AsyncIterator[httpx.AsyncClient]:
    async with monitor_api.reader() as client:
        yield client


async def _stored(client: httpx.AsyncClient, count: int) -> None:
    async def enough() -> bool:
        body = (await client.get("/api/devices")).json()
        return bool(body["total"] >= count)

    await wait_for(enough, what=f"{count} devices stored")


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def test_device_list_filters_sorts_and_pages(
    monitor_api: RunningMonitor, reader: httpx.AsyncClient, devices: dict[str, FakeDevice]
) -> None:
    for name, device in devices.items():
        # beta-1 announces a short interval and then falls silent: it goes stale.
        interval = 0.2 if name == "beta-1" else 60.0
        await device.beat(interval=interval, fw="2.0.1" if name == "beta-1" else "1.4")
    await _stored(reader, 4)
    async with monitor_api.admin() as admin:
        put = await admin.put("/api/classes/critical", json={"interval": 30, "grace": 5})
        assert put.status_code == 200, put.text
        for name, body in (
            ("alpha-1", {"tags": ["rack-a", "pumps"], "class": "critical"}),
            ("alpha-2", {"tags": ["rack-a"]}),
            ("gamma_x", {"maintenance": True}),
        ):
            response = await admin.patch(f"/api/devices/{name}", json=body)
            assert response.status_code == 200, response.text

    async def beta_stale() -> bool:
        body = (await reader.get("/api/devices", params={"state": "stale"})).json()
        return _ids(body) == ["beta-1"]

    await wait_for(beta_stale, what="beta-1 stale in the list")

    async def get(**params: Any) -> dict[str, Any]:
        response = await reader.get("/api/devices", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert _ids(await get(**{"class": "critical"})) == ["alpha-1"]
    assert _ids(await get(tag="rack-a")) == ["alpha-1", "alpha-2"]
    assert _ids(await get(tag="pumps")) == ["alpha-1"]
    assert _ids(await get(tag="nothing")) == []
    assert _ids(await get(q="ALPHA")) == ["alpha-1", "alpha-2"]
    assert _ids(await get(q="2.0")) == ["beta-1"]  # firmware
    assert _ids(await get(q="_")) == ["gamma_x"]  # LIKE wildcards are literal
    assert _ids(await get(q="%")) == []
    assert _ids(await get(maintenance="true")) == ["gamma_x"]
    # Worst first: stale, then maintenance, then online.
    assert _ids(await get(sort="state")) == ["beta-1", "gamma_x", "alpha-1", "alpha-2"]
    assert _ids(await get(sort="id", order="desc")) == ["gamma_x", "beta-1", "alpha-2", "alpha-1"]
    page = await get(sort="id", limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert _ids(page) == ["alpha-2", "beta-1"]

    alpha = (await get(q="alpha-1"))["items"][0]
    assert alpha["class"] == "critical"
    assert alpha["tags"] == ["pumps", "rack-a"]
    assert alpha["interval"] == 30.0  # the class interval is what it is judged by
    assert alpha["announced_interval"] == 60.0
    assert alpha["fw"] == "1.4"
    assert alpha["confirmed"] is True

    tags = await reader.get("/api/tags")
    assert tags.json() == ["pumps", "rack-a"]

    summary = (await reader.get("/api/summary")).json()
    assert summary["total"] == 4
    assert summary["counts"] == {
        "unknown": 0,
        "online": 2,
        "late": 0,
        "stale": 1,
        "offline": 0,
        "lost": 0,
        "maintenance": 1,
    }
    assert summary["broker_connected"] is True

    classes = {c["name"]: c for c in (await reader.get("/api/classes")).json()}
    assert classes["critical"]["devices"] == 1
    assert classes["critical"]["interval"] == 30.0
    assert classes["default"]["devices"] == 3
    one = await reader.get("/api/classes/critical")
    assert one.status_code == 200
    assert one.json()["grace"] == 5.0


async def test_device_detail_timeline_uptime_metrics_and_heartbeat_charts(
    monitor_api: RunningMonitor, reader: httpx.AsyncClient, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "pump-7")
    try:
        for _ in range(3):
            await device.beat(interval=0.2, metrics={"temp_c": 41.5, "mode": "eco"}, fw="9")
        stale = await wait_for(lambda: _state_is(reader, "pump-7", "stale"), what="pump-7 stale")
        assert stale["reason"] == "stopped-beating"
        await device.beat(interval=0.2, metrics={"temp_c": 42.0})
        await wait_for(lambda: _state_is(reader, "pump-7", "online"), what="pump-7 online")
    finally:
        device.close()

    async def full_timeline() -> dict[str, Any] | None:
        body: dict[str, Any] = (await reader.get("/api/devices/pump-7")).json()
        # Metrics are stored with the device row, within a flush window of the beat.
        done = len(body["timeline"]) == 4 and body["metrics"] == {"temp_c": 42.0}
        return body if done else None

    detail = await wait_for(full_timeline, what="four transitions stored")
    assert [(t["old_state"], t["new_state"]) for t in detail["timeline"]] == [
        ("stale", "online"),
        ("late", "stale"),
        ("online", "late"),
        (None, "online"),
    ]
    assert detail["metrics"] == {"temp_c": 42.0}
    assert detail["fw"] == "9"
    assert detail["state"] == "online"
    windows = {u["window"]: u for u in detail["uptime"]}
    assert set(windows) == {"24h", "7d", "30d"}
    day = windows["24h"]
    assert day["down_seconds"] > 0
    assert day["up_seconds"] > 0
    assert 0 < day["percent"] < 100
    assert day["percent"] == pytest.approx(
        100 * day["up_seconds"] / (day["up_seconds"] + day["down_seconds"]), abs=0.5
    )

    page = (await reader.get("/api/devices/pump-7/transitions", params={"limit": 2})).json()
    assert page["total"] == 4
    assert [t["new_state"] for t in page["items"]] == ["online", "stale"]
    rest = await reader.get("/api/devices/pump-7/transitions", params={"offset": 3})
    assert [t["new_state"] for t in rest.json()["items"]] == ["online"]
    first = detail["timeline"][-1]["at"]
    later = await reader.get("/api/devices/pump-7/transitions", params={"until": first})
    assert later.json()["total"] == 0
    since = await reader.get("/api/devices/pump-7/transitions", params={"since": first})
    assert since.json()["total"] == 4
    naive = await reader.get(
        "/api/devices/pump-7/transitions", params={"since": "2026-01-01T00:00:00"}
    )
    assert naive.status_code == 422
    assert "time zone" in naive.json()["detail"]

    async def four_beats() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await reader.get("/api/devices/pump-7/heartbeats", params={"range": "1h"})
        ).json()
        return body if sum(p["count"] for p in body["points"]) == 4 else None

    series = await wait_for(four_beats, what="four heartbeats in the rollups")
    assert series["bucket_seconds"] == 60
    assert len(series["points"]) == 60
    busy = [p for p in series["points"] if p["count"]]
    assert all(p["latency_avg_ms"] is not None for p in busy)
    assert sum(p["missed"] for p in series["points"]) >= 1  # the silence before stale
    for rng, buckets in (("24h", 96), ("7d", 168)):
        body = (await reader.get("/api/devices/pump-7/heartbeats", params={"range": rng})).json()
        assert len(body["points"]) == buckets
        assert sum(p["count"] for p in body["points"]) == 4
    fleet = (await reader.get("/api/fleet/heartbeats")).json()
    assert sum(p["count"] for p in fleet["points"]) == 4
    bad = await reader.get("/api/fleet/heartbeats", params={"range": "2w"})
    assert bad.status_code == 422


async def _state_is(client: httpx.AsyncClient, device_id: str, state: str) -> Any:
    response = await client.get(f"/api/devices/{device_id}")
    if response.status_code != 200:
        return None
    body = response.json()
    return body if body["state"] == state else None


BAD_LIST_PARAMETERS: list[dict[str, Any]] = [
    {"state": "sleeping"},
    {"sort": "colour"},
    {"order": "sideways"},
    {"limit": 0},
    {"limit": 1001},
    {"offset": -1},
    {"class": "no spaces"},
    {"tag": "a/b"},
    {"q": "x" * 65},
    {"maintenance": "perhaps"},
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bad_input_is_a_clear_4xx(reader: httpx.AsyncClient) -> None:
    for params in BAD_LIST_PARAMETERS:
        response = await reader.get("/api/devices", params=params)
        assert response.status_code == 422, params
        body = response.json()
        name = next(iter(params))
        assert body["detail"].startswith(f"invalid request: query.{name}: "), body
        assert [e["location"] for e in body["errors"]] == [f"query.{name}"]

    for path in (
        "/api/devices/nobody",
        "/api/devices/nobody/transitions",
        "/api/devices/nobody/heartbeats",
        "/api/classes/nothing",
    ):
        response = await reader.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] in ("no device 'nobody'", "no device class 'nothing'")

    for path in ("/api/devices/bad%20id", "/api/devices/" + "x" * 65, "/api/classes/a%2Bb"):
        response = await reader.get(path)
        assert response.status_code == 422, path
        assert response.json()["errors"][0]["location"] in ("path.device_id", "path.name")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_me_names_the_token(monitor_api: RunningMonitor, reader: httpx.AsyncClient) -> None:
    assert (await reader.get("/api/me")).json() == {"name": "reader", "scope": "read"}
    async with monitor_api.admin() as admin:
        assert (await admin.get("/api/me")).json() == {"name": "admin", "scope": "admin"}
