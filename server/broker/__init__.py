"""Publish/subscribe between server processes: the :class:`Broker` seam and its backends.

``MemoryBroker`` serves one process; ``RedisBroker`` connects several through one
Redis. Channel names come from :mod:`server.broker.channels`. Exceptions::

    PreauError (server.errors)
    └── BrokerUnavailable     the broker cannot publish or answer a health check now
"""

from __future__ import annotations

from .base import Broker, BrokerEventHandler, BrokerState, BrokerUnavailable
from .channels import (
    ChannelKind,
    ChannelName,
    discussion_channel,
    node_channel,
    parse_channel,
    school_channel,
    user_channel,
)
from .memory import MemoryBroker
from .redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "BrokerState",
    "BrokerUnavailable",
    "ChannelKind",
    "ChannelName",
    "MemoryBroker",
    "RedisBroker",
    "discussion_channel",
    "node_channel",
    "parse_channel",
    "school_channel",
    "user_channel",
]
