"""The pure policy of SPEC §3 (G1–G8): who may connect, start, post, invite, broadcast, vote.

Build a :class:`Gatekeeper` from a :class:`~server.model.SchoolState` and ask
it; every answer is a :class:`Decision`. Nothing in this package does I/O,
imports an async or web framework, or reads the clock: ``now`` is always an
argument. Modules, one concept each:

- ``decision``  — the :class:`Decision` value (``ALLOW``, :func:`refuse`, :func:`hold`);
- ``hours``     — the allowed-hours :class:`Window` (G3), DST included;
- ``index``     — the school's facts indexed once per state;
- ``rules``     — G4–G7 as pure predicates;
- ``broadcast`` — :class:`BroadcastTarget` and G8;
- ``groups``    — groups of a class as recipients of a start, expanded at the start;
- ``quota``     — how many discussions one user may start per hour and per day;
- ``gatekeeper`` — precedence and caching: the :class:`Gatekeeper`.
"""

from server.gatekeeper.broadcast import BroadcastScope, BroadcastTarget
from server.gatekeeper.decision import ALLOW, Decision, hold, refuse
from server.gatekeeper.gatekeeper import DEFAULT_MEMBERSHIP_CACHE_SIZE, Gatekeeper
from server.gatekeeper.groups import Expansion, Group, GroupKind
from server.gatekeeper.hours import Window, WindowState, validate_hours, validate_timezone

__all__ = [
    "ALLOW",
    "DEFAULT_MEMBERSHIP_CACHE_SIZE",
    "BroadcastScope",
    "BroadcastTarget",
    "Decision",
    "Expansion",
    "Gatekeeper",
    "Group",
    "GroupKind",
    "Window",
    "WindowState",
    "hold",
    "refuse",
    "validate_hours",
    "validate_timezone",
]
