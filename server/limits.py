"""The limits of one node: per connection, per user and per node (``Config`` sets them).

A module of its own, below the node and the configuration, so that both (and the
tests) can name them without loading the node.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection, per-user and per-node limits (``Config`` sets them).

    ``rate_per_second`` and ``rate_burst`` are per user across all of that user's
    connections on this node; ``connections_per_user`` caps those connections.
    """

    outbox_bytes: int = 1024 * 1024
    rate_per_second: float = 20.0
    rate_burst: int = 40
    connections_per_user: int = 10
    throttle_max: float = 1.0  # longest pause in reading a connection over the rate
    hello_timeout: float = 5.0
    tick_seconds: float = 1.0
    replay_max: int = 1000


DEFAULT_LIMITS = Limits()
