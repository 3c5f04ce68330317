"""Which offsets are safe to commit when requests finish out of order.

Requests of one partition run concurrently and finish in any order, but a
Kafka commit says "everything before offset N is done". So per partition we
commit the lowest offset still in flight (or one past the highest received
when none is): a request is never committed before its reply is produced.
"""

from __future__ import annotations

from collections.abc import Iterable

from querybus.transport import TopicPartition

__all__ = ["OffsetTracker"]


class OffsetTracker:
    def __init__(self) -> None:
        self._in_flight: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}  # one past the highest offset received
        self._committed: dict[TopicPartition, int] = {}

    def received(self, tp: TopicPartition, offset: int) -> None:
        self._in_flight.setdefault(tp, set()).add(offset)
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1

    def done(self, tp: TopicPartition, offset: int) -> None:
        pending = self._in_flight.get(tp)
        if pending is not None:
            pending.discard(offset)

    def in_flight(self, tp: TopicPartition) -> int:
        return len(self._in_flight.get(tp, ()))

    def committable(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets to commit now (only those that moved since the last commit)."""
        out: dict[TopicPartition, int] = {}
        for tp in self._next if partitions is None else partitions:
            if tp not in self._next:
                continue
            pending = self._in_flight.get(tp)
            position = min(pending) if pending else self._next[tp]
            if position != self._committed.get(tp):
                out[tp] = position
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the state of partitions this member no longer owns."""
        for tp in partitions:
            self._in_flight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
