"""Broker channel names (server/broker/channels.py): the layout, its hash tag, its parse."""

from __future__ import annotations

import pytest

from server.broker.channels import (
    ChannelKind,
    ChannelName,
    discussion_channel,
    node_channel,
    parse_channel,
    school_channel,
    user_channel,
)
from server.model import DiscussionId, SchoolId, UserId

HUGO = SchoolId("hugo")


def _hash_tag(channel: str) -> str:
    """What Redis Cluster hashes: the text between the first ``{`` and the next ``}``."""
    start = channel.index("{") + 1
    return channel[start:channel.index("}", start)]


def test_the_layout():
    assert discussion_channel(HUGO, DiscussionId(42)) == "preau:{hugo}:d:42"
    assert user_channel(HUGO, UserId("p.durand")) == "preau:{hugo}:u:p.durand"
    assert school_channel(HUGO) == "preau:{hugo}:school"
    assert node_channel("web-1") == "preau:node:web-1"


def test_every_channel_of_a_school_hashes_on_the_school():
    channels = [discussion_channel(HUGO, DiscussionId(1)), user_channel(HUGO, UserId("u1")),
                school_channel(HUGO)]
    assert {_hash_tag(c) for c in channels} == {"hugo"}


@pytest.mark.parametrize(
    ("channel", "parsed"),
    [
        ("preau:{hugo}:d:42",
         ChannelName(ChannelKind.DISCUSSION, HUGO, discussion_id=DiscussionId(42))),
        ("preau:{hugo}:u:school", ChannelName(ChannelKind.USER, HUGO, user_id=UserId("school"))),
        ("preau:{hugo}:school", ChannelName(ChannelKind.SCHOOL, HUGO)),
        ("preau:node:web-1", ChannelName(ChannelKind.NODE, node_id="web-1")),
    ],
)
def test_parse_is_the_inverse(channel: str, parsed: ChannelName):
    assert parse_channel(channel) == parsed


@pytest.mark.parametrize(
    "channel",
    ["", "preau:{hugo}:d:", "preau:{hugo}:d:01", "preau:{hugo}:d:-1", "preau:{}:school",
     "preau:{hugo}:x:1", "other:{hugo}:school", "preau:{hugo}:school:extra", "preau:node:"],
)
def test_parse_refuses_anything_else(channel: str):
    with pytest.raises(ValueError, match="not a Préau channel"):
        parse_channel(channel)


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "a:b", "a b", "é"])
def test_ids_that_could_break_the_tag_or_the_parse_are_refused(bad: str):
    with pytest.raises(ValueError, match="invalid school id"):
        school_channel(SchoolId(bad))
    with pytest.raises(ValueError, match="invalid user id"):
        user_channel(HUGO, UserId(bad))
    with pytest.raises(ValueError, match="invalid node id"):
        node_channel(bad)


@pytest.mark.parametrize("bad", [-1, True, "1"])
def test_discussion_ids_are_non_negative_integers(bad: object):
    with pytest.raises(ValueError, match="invalid discussion id"):
        discussion_channel(HUGO, bad)  # type: ignore[arg-type]
