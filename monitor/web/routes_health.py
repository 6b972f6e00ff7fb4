"""Probes and metrics. No token needed (``/metrics`` can require one, see settings).

* ``/health/live``: the event loop answers. A liveness probe restarts the process when
  this fails, so it checks nothing else: a lost broker or database is not fixed by a
  restart, and the monitor recovers from both by itself.
* ``/health/ready``: 200 when the monitor is doing its job -- engine loaded, broker
  connected, database reachable, write-behind keeping up -- else 503 with the failing
  checks. Suitable for load balancers, ``docker compose`` healthchecks and alerting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import text

from monitor.metrics import CONTENT_TYPE
from monitor.timefmt import iso
from monitor.web.auth import bearer, read_access
from monitor.web.deps import READ_ERRORS, Service
from monitor.web.schemas import CheckOut, LiveOut, ReadyOut

router = APIRouter()

_PROBE_TIMEOUT = 2.0
_PROBE_CACHE = 1.0


@router.get("/health/live", response_model=LiveOut, tags=["health"], summary="Liveness probe")
async def live() -> LiveOut:
    return LiveOut()


class DatabaseProbe:
    """``SELECT 1`` with a timeout, cached briefly so probes cannot load the database."""

    def __init__(self) -> None:
        self._at = -_PROBE_CACHE
        self._result = CheckOut(ok=False, detail="not checked yet")
        self._lock = asyncio.Lock()

    async def check(self, service: Service) -> CheckOut:
        async with self._lock:
            if time.monotonic() - self._at < _PROBE_CACHE:
                return self._result
            try:
                async with asyncio.timeout(_PROBE_TIMEOUT), service.sessions() as session:
                    await session.execute(text("SELECT 1"))
                result = CheckOut(ok=True, detail="reachable")
            except TimeoutError:
                result = CheckOut(ok=False, detail=f"no answer within {_PROBE_TIMEOUT:g} s")
            except Exception as exc:  # noqa: BLE001 - any failure means not reachable
                first_line = (str(exc) or type(exc).__name__).splitlines()[0][:300]
                result = CheckOut(ok=False, detail=first_line)
            self._at = time.monotonic()
            self._result = result
            return result


@router.get(
    "/health/ready",
    response_model=ReadyOut,
    tags=["health"],
    summary="Readiness probe: 200 when ready, 503 with the failing checks otherwise",
    responses={503: {"model": ReadyOut, "description": "Not ready; see the checks"}},
)
async def ready(service: Service, request: Request, response: Response) -> ReadyOut:
    probe: DatabaseProbe = request.app.state.db_probe
    writer = service.writer
    checks: dict[str, CheckOut] = {}
    checks["engine"] = (
        CheckOut(ok=True, detail="loaded")
        if service.engine is not None
        else CheckOut(ok=False, detail="loading state from the database")
    )
    checks["broker"] = _broker_check(service)
    database = await probe.check(service)
    if database.ok and not writer.db_ok:
        database = CheckOut(ok=False, detail=f"last write failed: {writer.last_error}")
    checks["database"] = database
    lag = writer.lag_seconds
    limit = service.settings.http_ready_max_lag
    checks["write_behind"] = CheckOut(
        ok=lag <= limit,
        detail=f"oldest unwritten change is {lag:.1f} s old (limit {limit:g} s)",
    )
    is_ready = all(c.ok for c in checks.values())
    if not is_ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadyOut(ready=is_ready, checks=checks)


def _broker_check(service: Service) -> CheckOut:
    link = service.link
    if link is None:
        return CheckOut(ok=False, detail="not connected to the broker (starting)")
    if link.connected:
        sight = service.sight
        if sight is not None and sight.blind and sight.reason is not None:
            return CheckOut(
                ok=False,
                detail=f"connected to {link.where}, but blind ({sight.reason.value}): "
                "device timeouts suspended until the link probe is answered",
            )
        return CheckOut(ok=True, detail=f"connected to {link.where}")
    since = ""
    if link.down_since is not None:
        since = f" since {iso(link.down_since)}"
    failure = link.last_failure
    if failure is None:
        return CheckOut(
            ok=False, detail=f"not connected to the broker{since}: connecting to {link.where}"
        )
    return CheckOut(
        ok=False,
        detail=f"not connected to the broker{since}: cannot connect to {link.where}: {failure} "
        f"({link.failed_attempts} failed attempts, retrying)",
    )


async def _metrics_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    service: Service = request.app.state.service
    if service.settings.http_metrics_auth:
        await read_access(request, credentials)


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics",
    description="Unauthenticated unless CLAWBEAT_HTTP_METRICS_AUTH is set, in which case "
    "a read token is required.",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **READ_ERRORS,
    },
    dependencies=[Depends(_metrics_access)],
    # Added to the bearer requirement: {} means "or no token" (CLAWBEAT_HTTP_METRICS_AUTH).
    openapi_extra={"security": [{}]},
)
async def metrics(service: Service) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
