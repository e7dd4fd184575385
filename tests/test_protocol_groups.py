"""The `groups` of a `start` frame (issue 11), parsed sans I/O."""

from __future__ import annotations

import pytest

from server.errors import ErrorCode
from server.gatekeeper import Group, GroupKind
from server.model import ClassId
from server.protocol import FrameError, Start, parse_request


@pytest.mark.parametrize("groups", [
    "students",
    [{"kind": "students"}],
    [{"kind": "students", "class": ""}],
    [{"kind": "students", "class": 6}],
    [{"kind": "students", "class": "6A\u0000"}],
    [{"kind": "students", "class": "x" * 65}],
    [{"kind": "students", "class": f"c{i}"} for i in range(11)],
])
def test_malformed_groups_are_bad_requests(groups: object) -> None:
    frame = {"type": "start", "ref": "r", "subject": "s", "body": "b", "client_id": "c",
             "groups": groups}
    with pytest.raises(FrameError) as caught:
        parse_request(frame)
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_groups_parse_beside_people() -> None:
    start = parse_request({"type": "start", "subject": "s", "body": "b", "client_id": "c",
                           "groups": [{"kind": "team", "class": "6A"},
                                      {"kind": "team", "class": "6A"}]})
    assert isinstance(start, Start)
    assert start.to == ()
    assert start.groups == (Group(GroupKind.TEAM, ClassId("6A")),)
    with pytest.raises(FrameError):  # without groups, 'to' is still needed
        parse_request({"type": "start", "subject": "s", "body": "b", "client_id": "c"})
