"""OffsetTracker: out-of-order completion commits only contiguous offsets."""

from __future__ import annotations

from querybus.adapter.offsets import OffsetTracker

TP = ("requests", 0)
TP1 = ("requests", 1)


def test_nothing_to_commit_before_anything_is_received() -> None:
    assert OffsetTracker().committable() == {}


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    t = OffsetTracker()
    for offset in range(10, 15):
        t.received(TP, offset)
    assert t.in_flight(TP) == 5
    # Nothing is done: the commit position stays at the first in-flight offset.
    assert t.committable() == {TP: 10}
    t.committed({TP: 10})
    assert t.committable() == {}

    t.done(TP, 12)
    t.done(TP, 14)
    assert t.committable() == {}  # 10 still running: nothing may move past it
    t.done(TP, 10)
    assert t.committable() == {TP: 11}
    t.committed({TP: 11})
    t.done(TP, 11)
    assert t.committable() == {TP: 13}  # 13 still running
    t.committed({TP: 13})
    t.done(TP, 13)
    assert t.committable() == {TP: 15}  # all done: one past the highest received
    t.committed({TP: 15})
    assert t.committable() == {}
    assert t.in_flight(TP) == 0


def test_partitions_are_independent_and_can_be_selected() -> None:
    t = OffsetTracker()
    t.received(TP, 0)
    t.received(TP1, 7)
    t.done(TP1, 7)
    assert t.committable() == {TP: 0, TP1: 8}
    assert t.committable([TP1]) == {TP1: 8}
    assert t.committable([("other", 0)]) == {}


def test_forget_drops_revoked_partitions() -> None:
    t = OffsetTracker()
    t.received(TP, 0)
    t.received(TP1, 0)
    t.forget([TP])
    assert t.committable() == {TP1: 0}
    assert t.in_flight(TP) == 0
    # Receiving again after a reassignment starts afresh.
    t.received(TP, 5)
    assert t.committable([TP]) == {TP: 5}


def test_redelivered_lower_offsets_do_not_move_the_position_backwards_wrongly() -> None:
    t = OffsetTracker()
    t.received(TP, 3)
    t.done(TP, 3)
    t.committed({TP: 4})
    # A redelivery (after a rebalance) of offset 2 is in flight: commit must wait at 2.
    t.received(TP, 2)
    assert t.committable() == {TP: 2}
    t.done(TP, 2)
    assert t.committable() == {}  # back at 4, already committed
