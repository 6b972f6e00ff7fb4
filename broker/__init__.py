"""Mosquitto tooling for clawbeat: config rendering, ACL, users, dev TLS, running a broker."""

from broker.acl import render_acl
from broker.config import render_config
from broker.errors import BrokerToolError
from broker.passwords import add_users, remove_user
from broker.runner import BrokerProcess, free_port

__all__ = [
    "BrokerProcess",
    "BrokerToolError",
    "add_users",
    "free_port",
    "remove_user",
    "render_acl",
    "render_config",
]
