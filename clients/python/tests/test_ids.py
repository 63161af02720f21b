"""Message ids made on the client: UUIDv7, unique, time-ordered by millisecond, and never repeated across a fork."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import time
import uuid

import pytest

from segment_sidecar_client import Alias, Group, Identify, Page, Screen, Track, new_message_id
from segment_sidecar_client._ids import MessageIds


def test_ids_are_uuid7_with_the_current_millisecond() -> None:
    """An id parses as an RFC 9562 version 7 UUID whose 48-bit time is now."""
    before = time.time_ns() // 1_000_000
    made = new_message_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_are_unique_and_sort_by_millisecond() -> None:
    """200,000 ids from one source (many refills of the random parts) are distinct and ordered by their time."""
    source = MessageIds()
    ids = [source() for _ in range(200_000)]
    assert len(set(ids)) == len(ids)
    times = [uuid.UUID(made).int >> 80 for made in ids]
    assert times == sorted(times)
    variants = {made[19] for made in ids}
    assert variants == set("89ab")  # the two random bits of the variant digit take every value


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """After fork the child drops the random parts it inherited, so parent and child make different ids."""
    new_message_id()  # random parts are ready in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send ten ids and leave without running the parent's cleanup
        os.close(read)
        os.write(write, "\n".join(new_message_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    parent = [new_message_id() for _ in range(10)]
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    assert len(child) == 10
    assert {made[19:] for made in child}.isdisjoint(made[19:] for made in parent)  # the random part of each id


@pytest.mark.parametrize("cls", [Track, Identify, Page, Screen, Group, Alias])
def test_events_keep_their_dataclass_behaviour(cls: type) -> None:
    """The events' faster __init__ keeps the keyword-only signature, defaults, equality, hashing and frozenness."""
    fields = dataclasses.fields(cls)
    parameters = inspect.signature(cls).parameters
    assert [(name, p.kind, p.default) for name, p in parameters.items()] == [
        (f.name, inspect.Parameter.KEYWORD_ONLY, f.default) for f in fields
    ]
    values = {f.name: f"v-{f.name}" for f in fields}
    event = cls(**values)
    assert dataclasses.asdict(event) == values
    assert event == cls(**values)
    assert hash(event) == hash(cls(**values))
    assert dataclasses.replace(event, user_id="other").user_id == "other"
    assert cls() == cls(**{f.name: f.default for f in fields})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.user_id = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls("positional")
