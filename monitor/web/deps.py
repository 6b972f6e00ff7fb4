"""FastAPI dependencies shared by the routers: the running service, common responses."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Path, Request
from pydantic import AfterValidator

from monitor.service import MonitorService
from monitor.web.schemas import ID_PATTERN, ErrorOut


def _service(request: Request) -> MonitorService:
    service: MonitorService = request.app.state.service
    return service


Service = Annotated[MonitorService, Depends(_service)]

# Browsers (and most HTTP clients) remove "." and ".." path segments, percent-encoded
# or not, so a device with such an id could not be reached at /devices/.. at all. A
# leading "~" (never part of an id) is dropped: /devices/~.. is device "..".
DEVICE_PATH_PATTERN: Final = r"^~?[A-Za-z0-9._-]{1,64}$"


def _unescape_device_id(value: str) -> str:
    return value.removeprefix("~")


DevicePath = Annotated[
    str,
    Path(
        pattern=DEVICE_PATH_PATTERN,
        description="Device id (1-64 of A-Z a-z 0-9 . _ -). A leading `~` is dropped, so "
        "the ids `.` and `..`, which URL normalisation removes from paths, are written "
        "`~.` and `~..`.",
    ),
    AfterValidator(_unescape_device_id),
]
ClassPath = Annotated[str, Path(pattern=ID_PATTERN, description="Class name")]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


READ_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _error("Missing, unknown or revoked token"),
    422: _error("Invalid input; `errors` lists each problem"),
    429: _error("Too many wrong tokens from this address; wait `Retry-After` seconds"),
    503: _error("The database is unavailable"),
}
ADMIN_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **READ_ERRORS,
    403: _error("The token is read-only"),
    408: _error("The request body did not arrive in time (CLAWBEAT_HTTP_BODY_TIMEOUT)"),
    413: _error("The request body is too large (CLAWBEAT_HTTP_MAX_BODY)"),
}
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {404: _error("No such device or class")}
CONFLICT: Final[dict[int | str, dict[str, Any]]] = {409: _error("Conflicts with current state")}
