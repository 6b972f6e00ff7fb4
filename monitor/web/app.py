"""The FastAPI application: API routers, dashboard pages, static assets, error mapping."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.alerts.errors import AlertingError
from monitor.store.errors import DataRejected, StoreError
from monitor.web import (
    routes_alerts,
    routes_cluster,
    routes_fleet,
    routes_health,
    routes_manage,
    routes_read,
    routes_risk,
    routes_sources,
)
from monitor.web.auth import Principal, TokenVerifier, authenticate
from monitor.web.deps import DevicePath
from monitor.web.docs_ui import swagger_ui_dir
from monitor.web.guard import BodyGuard
from monitor.web.ratelimit import FailureLimiter
from monitor.web.routes_health import DatabaseProbe

if TYPE_CHECKING:
    from monitor.service import MonitorService

try:
    __version__ = version("clawbeat")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

WEB_DIR: Final = Path(str(files("monitor.web")))
STATIC_DIR: Final = WEB_DIR / "static"
TEMPLATES_DIR: Final = WEB_DIR / "templates"

# The dashboard keeps its token in localStorage, so nothing but our own script may run:
# no inline scripts, no third-party origins.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

DESCRIPTION: Final = """\
The clawbeat monitor's HTTP API: devices and their live liveness state, state history
and uptime, heartbeat statistics, device classes, and management (intervals, classes,
tags, maintenance).

**Authentication**: `Authorization: Bearer <token>`, tokens made with
`clawbeat token create --scope read|admin`. A `read` token may call every GET; changes
need `admin`. `/health/*` needs no token; `/metrics` needs none unless
`CLAWBEAT_HTTP_METRICS_AUTH` is set.
"""


class _SecurityHeaders:
    """Headers every response gets; a plain ASGI middleware so streams are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CSP.encode()),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _validation_message(exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err.get("loc", ()))
        errors.append({"location": location, "message": str(err.get("msg", "invalid"))})
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5]) or "invalid"
    return JSONResponse(
        {"detail": f"invalid request: {summary}", "errors": errors},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def create_app(service: MonitorService) -> FastAPI:
    app = FastAPI(
        title="clawbeat monitor API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # FastAPI's page needs a CDN and an inline script: ours is below
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.service = service
    app.state.verifier = TokenVerifier(service.sessions)
    app.state.auth_limiter = FailureLimiter()
    app.state.db_probe = DatabaseProbe()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_message(exc)

    @app.exception_handler(DataRejected)
    async def data_rejected(_request: Request, exc: DataRejected) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the database refused the change: {exc}"},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    app.include_router(routes_read.router, tags=["read"])
    app.include_router(routes_risk.router)
    app.include_router(routes_fleet.router)
    app.include_router(routes_cluster.router)
    app.include_router(routes_manage.router, tags=["manage"])
    app.include_router(routes_sources.router)
    app.include_router(routes_alerts.router)
    app.add_exception_handler(AlertingError, routes_alerts.alerting_error)
    app.include_router(routes_health.router)

    @app.get("/", include_in_schema=False)
    async def fleet_page() -> FileResponse:
        return FileResponse(TEMPLATES_DIR / "fleet.html", media_type="text/html")

    @app.get("/alerts", include_in_schema=False)
    async def alerts_page() -> FileResponse:
        return FileResponse(TEMPLATES_DIR / "alerts.html", media_type="text/html")

    @app.get("/cluster", include_in_schema=False)
    async def cluster_page() -> FileResponse:
        return FileResponse(TEMPLATES_DIR / "cluster.html", media_type="text/html")

    @app.get("/devices/{device_id}", include_in_schema=False)
    async def device_page(device_id: DevicePath) -> FileResponse:
        del device_id  # the page's script reads it from the URL
        return FileResponse(TEMPLATES_DIR / "device.html", media_type="text/html")

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs_page() -> FileResponse:
        return FileResponse(TEMPLATES_DIR / "api-docs.html", media_type="text/html")

    app.mount("/api/docs/assets", StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    async def check_token(token: str | None, host: str | None) -> Principal:
        return await authenticate(app.state.verifier, app.state.auth_limiter, token, host)

    # Added before the security headers, so its own answers carry them too.
    app.add_middleware(
        BodyGuard,
        authenticate=check_token,
        max_body=service.settings.http_max_body,
        body_timeout=service.settings.http_body_timeout,
    )
    app.add_middleware(_SecurityHeaders)
    return app
