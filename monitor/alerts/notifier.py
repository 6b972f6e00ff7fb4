"""Sending one notification to one channel URL, through apprise.

apprise understands ~100 services by URL: ``mailto://`` / ``mailtos://`` (SMTP),
``slack://``, ``msteams://``, ``tgram://`` (Telegram), ``ntfy://``, ``pagerduty://``,
``opsgenie://``, SMS gateways, and generic ``json://`` / ``jsons://`` webhooks. This is
the only module that imports it; its failures become :class:`DeliveryFailed`.

Channel URLs carry credentials, so they are never logged or shown whole:
:func:`redact` gives apprise's privacy form (passwords and tokens masked).
"""

from __future__ import annotations

import logging
from typing import Protocol

import apprise

from monitor.alerts.errors import DeliveryFailed, InvalidChannelUrl

log = logging.getLogger("clawbeat.alerts.notifier")

_TYPES = {
    "info": apprise.NotifyType.INFO,
    "success": apprise.NotifyType.SUCCESS,
    "warning": apprise.NotifyType.WARNING,
    "failure": apprise.NotifyType.FAILURE,
}


class Notifier(Protocol):
    """What the outbox needs; tests may pass their own (only for what leaves the machine)."""

    async def send(self, url: str, *, title: str, body: str, notify_type: str) -> None:
        """Deliver or raise :class:`DeliveryFailed`."""


def check_url(name: str, url: str) -> None:
    """Raise :class:`InvalidChannelUrl` unless apprise can use ``url`` (never echoed)."""
    if not url or url != url.strip():
        raise InvalidChannelUrl(name, "empty URL or surrounding spaces")
    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        raise InvalidChannelUrl(
            name,
            f"apprise cannot use this URL (scheme {scheme!r}); see "
            "https://github.com/caronc/apprise/wiki for the URL of each service",
        )


def redact(url: str) -> str:
    """The URL with secrets masked, for lists and logs; a placeholder if unparseable."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme}://<invalid>"
    return str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]


class AppriseNotifier:
    def __init__(self, *, timeout: float = 30.0) -> None:
        self.timeout = timeout

    async def send(self, url: str, *, title: str, body: str, notify_type: str) -> None:
        sender = apprise.Apprise()
        if not sender.add(url):
            raise DeliveryFailed("apprise cannot use the channel URL", retryable=False)
        try:
            result = await sender.async_notify(
                body=body,
                title=title,
                notify_type=_TYPES.get(notify_type, apprise.NotifyType.INFO),
                timeout=self.timeout,
            )
        except Exception as exc:  # a plugin bug must not kill the worker
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not result:
            problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
            reason = "; ".join(dict.fromkeys(problems)) or f"apprise status {result.status.name}"
            raise DeliveryFailed(reason[:500])
