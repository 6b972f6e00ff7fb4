"""Authentication and authorisation: bearer tokens, scopes, revocation, the token CLI."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from monitor.cli import main
from monitor.store.models import ApiToken
from monitor.web.ratelimit import FailureLimiter
from tests.harness.api import RunningMonitor
from tests.harness.db_fixtures import open_store

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

READ_PATHS = [
    "/api/me",
    "/api/summary",
    "/api/devices",
    "/api/tags",
    "/api/devices/x",
    "/api/devices/x/transitions",
    "/api/devices/x/heartbeats",
    "/api/fleet/heartbeats",
    "/api/classes",
    "/api/classes/default",
    "/api/events",
    "/api/alerts",
    "/api/alerts/1",
    "/api/channels",
    "/api/rules",
    "/api/mutes",
    "/api/live?id=x",
    "/api/transitions",
    "/api/deliveries",
]
WRITES = [
    ("PATCH", "/api/devices/x", {"maintenance": True}),
    ("PUT", "/api/classes/c1", {}),
    ("PATCH", "/api/classes/default", {"grace": 3}),
    ("DELETE", "/api/classes/c1", None),
    ("POST", "/api/alerts/1/acknowledge", None),
    ("PUT", "/api/channels/ops", {"url": "json://127.0.0.1:9/"}),
    ("DELETE", "/api/channels/ops", None),
    ("POST", "/api/channels/ops/test", None),
    ("PUT", "/api/rules/r1", {"channels": ["ops"]}),
    ("DELETE", "/api/rules/r1", None),
    ("POST", "/api/devices/x/mute", {"minutes": 5}),
    ("DELETE", "/api/mutes/1", None),
]


async def clawbeat(
    capsys: pytest.CaptureFixture[str], database_url: str, *args: str
) -> tuple[int, str, str]:
    """``clawbeat ARGS --database-url URL`` in this process (in a thread: it runs its own
    event loop); returns exit status, stdout and stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, [*args, "--database-url", database_url])
    out, err = capsys.readouterr()
    return code, out, err


async def test_no_or_bad_token_is_401_with_a_bearer_challenge(
    monitor_api: RunningMonitor,
) -> None:
    # More wrong tokens than one address may send (tests/e2e/test_http_abuse.py tests
    # that budget): here every endpoint must say 401, so the budget is made large.
    monitor_api.http.app.state.auth_limiter = FailureLimiter(burst=10_000)
    for token in (None, "cbt_not-a-real-token", "garbage", "Bearer"):
        async with monitor_api.client(token) as client:
            for path in READ_PATHS:
                response = await client.get(path)
                assert response.status_code == 401, (token, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["detail"]
            for method, path, body in WRITES:
                response = await client.request(method, path, json=body)
                assert response.status_code == 401, (token, method, path)
    async with monitor_api.client() as client:
        basic = await client.get("/api/summary", headers={"Authorization": "Basic dTpw"})
        assert basic.status_code == 401


async def test_a_read_token_reads_but_cannot_write(monitor_api: RunningMonitor) -> None:
    async with monitor_api.reader() as reader:
        assert (await reader.get("/api/summary")).status_code == 200
        for method, path, body in WRITES:
            response = await reader.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert "admin token" in response.json()["detail"]
    async with monitor_api.admin() as admin:
        assert (await admin.put("/api/classes/c1", json={})).status_code == 200


async def test_the_query_token_works_for_the_event_stream_only(
    monitor_api: RunningMonitor,
) -> None:
    async with monitor_api.client() as anonymous:
        listed = await anonymous.get("/api/devices", params={"token": monitor_api.read_token})
        assert listed.status_code == 401
        async with anonymous.stream(
            "GET", "/api/events", params={"token": monitor_api.read_token}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")


async def test_health_and_metrics_need_no_token(monitor_api: RunningMonitor) -> None:
    async with monitor_api.client() as anonymous:
        assert (await anonymous.get("/health/live")).status_code == 200
        assert (await anonymous.get("/health/ready")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        # The dashboard pages hold no data: the page asks for a token itself.
        page = await anonymous.get("/")
        assert page.status_code == 200
        assert "content-security-policy" in page.headers
        assert (await anonymous.get("/devices/pump-7")).status_code == 200
        assert (await anonymous.get("/static/fleet.js")).status_code == 200
        assert (await anonymous.get("/api/openapi.json")).status_code == 200


async def test_metrics_can_require_a_read_token(monitor_api: RunningMonitor) -> None:
    monitor_api.service.settings.http_metrics_auth = True
    async with monitor_api.client() as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
    async with monitor_api.reader() as reader:
        assert (await reader.get("/metrics")).status_code == 200


async def test_tokens_are_stored_hashed_and_revocation_takes_effect(
    monitor_api: RunningMonitor, capsys: pytest.CaptureFixture[str]
) -> None:
    url = monitor_api.database_url
    code, out, _ = await clawbeat(
        capsys, url, "token", "create", "--scope", "read", "--name", "grafana", "--json"
    )
    assert code == 0
    info = json.loads(out)
    token = info["token"]
    assert token.startswith("cbt_")
    assert len(token) >= 40
    code, out, err = await clawbeat(capsys, url, "token", "create", "--scope", "admin")
    assert code == 0
    assert out.strip().startswith("cbt_")
    assert "shown only this once" in err

    async with open_store(url) as sessions, sessions() as session:
        rows = list((await session.scalars(select(ApiToken))).all())
    assert all(token not in (r.token_hash, r.prefix, r.name) for r in rows)
    assert {r.name for r in rows} >= {"grafana", "reader", "admin"}

    _, out, _ = await clawbeat(capsys, url, "token", "list", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    grafana = next(t for t in listed if t["name"] == "grafana")
    assert grafana["scope"] == "read"
    assert grafana["prefix"] == token[:12]
    assert "token" not in grafana
    _, table, _ = await clawbeat(capsys, url, "token", "list")
    assert "grafana" in table
    assert token not in table

    # Verified tokens are cached for a few seconds; no cache here, so revocation shows at once.
    monitor_api.http.app.state.verifier.cache_seconds = 0
    async with monitor_api.client(token) as client:
        assert (await client.get("/api/me")).json() == {"name": "grafana", "scope": "read"}
        code, out, _ = await clawbeat(capsys, url, "token", "revoke", str(info["id"]))
        assert code == 0
        assert f"token {info['id']} revoked" in out
        refused = await client.get("/api/me")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]

    _, out, _ = await clawbeat(capsys, url, "token", "revoke", str(info["id"]))
    assert "already revoked" in out
    code, _, err = await clawbeat(capsys, url, "token", "revoke", "999999")
    assert code == 2
    assert "no API token with id 999999" in err
    _, out, _ = await clawbeat(capsys, url, "token", "list", "--json")
    assert "grafana" not in out  # revoked tokens only with --all
    _, out, _ = await clawbeat(capsys, url, "token", "list", "--all", "--json")
    revoked = next(json.loads(line) for line in out.splitlines() if "grafana" in line)
    assert revoked["revoked"] is not None


async def test_last_use_is_recorded(monitor_api: RunningMonitor) -> None:
    async with monitor_api.reader() as reader:
        assert (await reader.get("/api/me")).status_code == 200
    async with open_store(monitor_api.database_url) as sessions, sessions() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.name == "reader"))
    assert row is not None
    assert row.last_used_at is not None
