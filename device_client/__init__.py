"""clawbeat device SDK (protocol v1).

``Device`` is the whole SDK for most programs; ``device_client.protocol`` holds the
topics and payload codecs shared with the monitor.
"""

from typing import TYPE_CHECKING, Any

from device_client.errors import ConnectRefused, DeviceError, InvalidBrokerUrl
from device_client.protocol import InvalidDeviceId
from device_client.urls import BrokerUrl, parse_broker_url

if TYPE_CHECKING:
    from device_client.client import Device

__all__ = [
    "BrokerUrl",
    "ConnectRefused",
    "Device",
    "DeviceError",
    "InvalidBrokerUrl",
    "InvalidDeviceId",
    "parse_broker_url",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: the monitor's pure liveness engine imports
    # device_client.protocol, and must not drag paho and threads in with it.
    if name == "Device":
        from device_client.client import Device  # noqa: PLC0415

        return Device
    raise AttributeError(f"module 'device_client' has no attribute {name!r}")
