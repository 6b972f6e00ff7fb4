"""Where the API docs page's Swagger UI comes from: the ``fastapi-offline`` package.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline script;
the dashboard's Content-Security-Policy (``script-src 'self'``, no third-party origins)
blocks both, and a monitor on an isolated network reaches no CDN anyway. So the page
is ours (``templates/api-docs.html``, initialised by ``static/api-docs.js``) and the
Swagger UI files are served from an installed package. ``fastapi-offline`` ships a
Swagger UI 5 build (OpenAPI 3.1, which FastAPI writes; Swagger UI 4 cannot show it)
next to its code; only those files are used, not its FastAPI wrapper.

Their location inside the package is not a public interface, so it is looked up here
and nowhere else, and checked when the app is built: a release that moves them stops
the monitor at start with this module's message instead of serving a blank page
(``tests/integration/test_api_docs_assets.py`` holds the contract).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from monitor.errors import ConfigError

ASSETS: Final = ("swagger-ui-bundle.js", "swagger-ui.css")


def swagger_ui_dir() -> Path:
    """The directory holding :data:`ASSETS`; ConfigError if the package lacks them."""
    try:
        directory = Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the API docs need the fastapi-offline package (a clawbeat dependency): "
            "reinstall clawbeat"
        ) from exc
    missing = [name for name in ASSETS if not (directory / name).is_file()]
    if missing:
        raise ConfigError(
            f"fastapi-offline at {directory} lacks {', '.join(missing)}: "
            "install a release that ships Swagger UI (see pyproject.toml)"
        )
    return directory
