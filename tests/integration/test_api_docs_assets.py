"""The API docs page's Swagger UI: served by the monitor, no inline script, no CDN.

Also the contract with ``fastapi-offline`` (monitor/web/docs_ui.py): the files are where
the monitor looks for them and are a Swagger UI that reads OpenAPI 3.1. The page itself
is rendered in Chromium by tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import re

import httpx
import pytest

from monitor.parts import open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.web.app import create_app
from monitor.web.docs_ui import ASSETS, swagger_ui_dir

pytestmark = pytest.mark.anyio


def test_the_package_ships_a_swagger_ui_that_reads_openapi_3_1() -> None:
    directory = swagger_ui_dir()
    for name in ASSETS:
        assert (directory / name).stat().st_size > 10_000, name
    bundle = (directory / "swagger-ui-bundle.js").read_text(errors="replace")
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version is not None, "no version in swagger-ui-bundle.js"
    assert int(version.group(1)) >= 5, f"Swagger UI {version.group(0)} cannot show OpenAPI 3.1"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_docs_page_loads_only_the_monitors_own_files(database_url: str) -> None:
    settings = MonitorSettings(database_url=database_url)
    parts = await open_monitor(settings)
    app = create_app(MonitorService(settings, parts))
    await parts.close()
    assert app.openapi()["openapi"].startswith("3.1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
        page = await client.get("/api/docs")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        html = page.text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
        assert scripts, html
        for attrs, body in scripts:
            assert body.strip() == "", f"an inline script, which the CSP blocks: {body[:80]}"
            src = re.search(r'src="([^"]+)"', attrs)
            assert src is not None, attrs
            assert src.group(1).startswith("/"), attrs
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith("/"), f"{url} is not the monitor's own"
            if url.startswith(("/api/docs/assets/", "/static/")):
                asset = await client.get(url)
                assert asset.status_code == 200, url
