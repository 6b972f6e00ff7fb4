"""The monitor process: the service with the faces its settings ask for.

The composition root: the service knows nothing of the web; this module builds the HTTP
server on top of it (when ``http_bind`` is set) and hands it to the service to run.
Imported only by ``clawbeat monitor`` and the tests, so no other command pays for
FastAPI, uvicorn or aiomqtt.
"""

from __future__ import annotations

from monitor.parts import MonitorParts, open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.web.server import HttpServer


class MonitorProcess:
    def __init__(self, settings: MonitorSettings, parts: MonitorParts) -> None:
        self.service = MonitorService(settings, parts)
        self.http = HttpServer(self.service) if settings.http_bind else None

    @classmethod
    async def open(cls, settings: MonitorSettings) -> MonitorProcess:
        """Open the monitor's parts (:func:`open_monitor`) and build the process on them;
        a bad HTTP setting fails here too, and gives back what was opened."""
        parts = await open_monitor(settings)
        try:
            return cls(settings, parts)
        except BaseException:
            await parts.close()
            raise

    async def run(self) -> int:
        return await self.service.run(faces=() if self.http is None else (self.http,))

    def request_stop(self) -> None:
        self.service.request_stop()
