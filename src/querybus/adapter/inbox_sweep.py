"""Deleting the inboxes of adapters that are gone.

An adapter never deletes its own inbox (:mod:`querybus.adapter.inbox` says
why), and without a stable ``QUERYBUS_INSTANCE_ID`` every start makes a new
one, so the inboxes of stopped adapters would pile up. A live adapter appends
a heartbeat to its inbox every ``QUERYBUS_INBOX_HEARTBEAT`` seconds; every
adapter sweeps the others' inboxes (about a minute after start, then every
``QUERYBUS_INBOX_SWEEP_INTERVAL`` seconds, ±20 % so that a fleet started at
once does not sweep at once) and deletes each inbox whose last record is
older than ``QUERYBUS_INBOX_RETIRE_AFTER``.

That age is generous on purpose: more than two heartbeats (one late
heartbeat must not retire a live adapter's inbox) and at least the longest
transaction lifetime (until then a caller may still hold a transaction of
the gone adapter and send to its inbox, and a send to a deleted topic hangs
for the caller's whole timeout). Clocks of a few seconds apart do not matter
against it.

An inbox holding no record at all (made by an adapter of a version without
heartbeats, or emptied by retention) tells nothing about its adapter; it is
deleted only once this sweeper has seen it empty for the retire age (in
memory: a restarted sweeper starts counting again).

Sweepers of several adapters may delete the same inbox at once: deleting a
topic that is gone already is not an error. An inbox is checked and, when
retired, deleted at once, one after the other, so the window in which an
adapter restarting under the same stable instance id could write its first
heartbeat between the check and the deletion is one round trip wide; an
adapter whose inbox was deleted under it creates it again at its next
heartbeat (:meth:`querybus.adapter.inbox.Inbox`).

Deleting needs DELETE on the inbox prefix (``querybus acl adapter`` grants
it); refused, the sweep logs one warning and stops (the adapter goes on).
``querybus inboxes`` lists the inboxes and sweeps by hand with the same logic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from querybus.errors import (
    BrokerAuthorizationError,
    BrokerUnavailableError,
    QueryBusError,
    TransportError,
)
from querybus.transport import Transport

__all__ = ["FIRST_SWEEP_DELAY", "InboxState", "InboxStatus", "InboxSweeper"]

log = logging.getLogger("querybus.adapter")

#: Seconds after start before an adapter's first sweep (or one interval, when
#: that is shorter): starting adapters have other things to do first.
FIRST_SWEEP_DELAY = 60.0
# Each wait between sweeps is the interval times a factor in [1 - J, 1 + J].
_JITTER = 0.2


class InboxState(enum.StrEnum):
    """What a sweep makes of one inbox."""

    #: The sweeping adapter's own inbox: never deleted.
    OWN = "own"
    #: Its last record is younger than the retire age: its adapter may be alive.
    LIVE = "live"
    #: No record; deleted once seen empty for the retire age.
    EMPTY = "empty"
    #: To be deleted: last record (or emptiness) older than the retire age.
    RETIRED = "retired"
    #: Deleted by this sweep.
    DELETED = "deleted"
    #: Could not be read this time (deleted meanwhile, or a failure): next time.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class InboxStatus:
    """One inbox as a sweep saw it.

    Attributes:
        topic: the inbox topic.
        state: what the sweep made of it.
        last_record: timestamp of its last record, seconds since the epoch
            (None: empty, or not read).
        age: seconds since its last record; for an empty inbox, seconds since
            this sweeper first saw it empty (None for the own and unknown ones).
        error: why it could not be read (``UNKNOWN``).
    """

    topic: str
    state: InboxState
    last_record: float | None = None
    age: float | None = None
    error: str = ""


class InboxSweeper:
    """Finds, and deletes, the inboxes whose adapters are gone.

    Args:
        transport: the bus.
        prefix: what every inbox topic starts with (``TopicNames.inbox_prefix``).
        retire_after: seconds after its last record (or of being seen empty)
            after which an inbox is deleted.
        own: the sweeping adapter's own inbox, never deleted (None: none).
        clock: the current time in seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        transport: Transport,
        prefix: str,
        *,
        retire_after: float,
        own: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.retire_after = retire_after
        self.own = own
        self._transport = transport
        self._clock = clock
        # Inboxes seen without any record, and when that was first seen.
        self._empty_since: dict[str, float] = {}
        #: Sweeps completed, and the clock when the last one of them began.
        self.completed = 0
        self.last_started: float | None = None

    async def survey(self) -> list[InboxStatus]:
        """Every inbox and what a sweep would do with it; nothing is deleted.

        Raises:
            BrokerAuthorizationError: this principal may not list or read the inboxes.
            TransportError: the bus could not be asked (``BrokerUnavailableError``
                when it cannot be reached).
        """
        return [await self._check(name) for name in await self._list()]

    async def sweep(self) -> list[InboxStatus]:
        """Check every inbox and delete each retired one right after its check.

        Returns:
            Every inbox's status; those deleted are ``DELETED``.

        Raises:
            BrokerAuthorizationError: this principal may not list, read or delete
                the inboxes (nothing more is deleted).
            TransportError: the bus could not be asked (``BrokerUnavailableError``
                when it cannot be reached); inboxes deleted so far stay deleted.
        """
        started = self._clock()
        out: list[InboxStatus] = []
        for name in await self._list():
            status = await self._check(name)
            if status.state is InboxState.RETIRED:
                await self._transport.delete_topics([name])
                self._empty_since.pop(name, None)
                status = dataclasses.replace(status, state=InboxState.DELETED)
                if status.last_record is None:
                    why = f"seen empty for more than {self.retire_after:g} s"
                else:
                    why = f"its last record is {status.age or 0.0:.0f} s old"
                log.info("deleted the inbox %s: %s", name, why)
            out.append(status)
        self.completed += 1
        self.last_started = started
        return out

    async def run(self, interval: float, *, first_delay: float | None = None) -> None:
        """Sweep every ``interval`` seconds (±20 %) until cancelled, or until
        the bus refuses this principal (one warning; the caller goes on).
        Failures are logged and the next sweep comes as planned.

        Args:
            interval: seconds between two sweeps.
            first_delay: seconds before the first one (default: a minute, or
                ``interval`` when shorter), jittered too.
        """
        delay = min(FIRST_SWEEP_DELAY, interval) if first_delay is None else first_delay
        while True:
            await asyncio.sleep(delay * random.uniform(1 - _JITTER, 1 + _JITTER))
            delay = interval
            try:
                await self.sweep()
            except BrokerAuthorizationError as exc:
                log.warning(
                    "inbox sweep stopped: this principal may not list, read or delete the "
                    "inboxes of other adapters (%s). It needs DESCRIBE, READ and DELETE on "
                    "the topics prefixed %r (`querybus acl adapter` prints them); or set "
                    "QUERYBUS_INBOX_SWEEP_INTERVAL=0 to turn the sweep off",
                    exc,
                    self.prefix,
                )
                return
            except QueryBusError as exc:
                log.warning("sweeping the inboxes failed (next sweep in ~%g s): %s", interval, exc)
            except Exception:  # the sweep must not end on a bug; the adapter is unaffected
                log.exception("sweeping the inboxes failed unexpectedly")

    async def _list(self) -> list[str]:
        names = await self._transport.list_topics(self.prefix)
        # Forget the empty ones that are gone (deleted by another sweeper).
        listed = set(names)
        self._empty_since = {t: s for t, s in self._empty_since.items() if t in listed}
        return names

    async def _check(self, name: str) -> InboxStatus:
        if name == self.own:
            return InboxStatus(name, InboxState.OWN)
        try:
            last = await self._transport.latest_timestamp(name)
        except (BrokerAuthorizationError, BrokerUnavailableError):
            raise  # the same for every inbox: end this sweep
        except TransportError as exc:
            # Most likely deleted by another sweeper since the listing.
            log.debug("inbox %s not read: %s", name, exc)
            return InboxStatus(name, InboxState.UNKNOWN, error=str(exc))
        now = self._clock()
        if last is None:
            seen = now - self._empty_since.setdefault(name, now)
            retired = seen > self.retire_after
            return InboxStatus(name, InboxState.RETIRED if retired else InboxState.EMPTY, age=seen)
        self._empty_since.pop(name, None)
        age = now - last
        # A record stamped in the future (another clock ahead of ours) is live.
        state = InboxState.RETIRED if age > self.retire_after else InboxState.LIVE
        return InboxStatus(name, state, last_record=last, age=age)
