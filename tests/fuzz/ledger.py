"""Accounting: every record sent must come back as a reply or a dead letter, and
each must be what its :class:`~tests.fuzz.generator.Expect` allows."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.generator import FUZZ_ID, Answer, Case, Expect

from querybus.errors import ERROR_CODES
from querybus.protocol import Headers, QueryResult, decode_reply, decode_rows
from querybus.transport import Record

__all__ = ["INTERNAL_ERROR_REASON", "Ledger", "Problem"]

_CID = re.compile(rb"^fz(\d+):")
_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")
#: The dead-letter reason of the adapter's last-resort handler (an unexpected exception).
INTERNAL_ERROR_REASON = "internal error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One way one record was mishandled."""

    index: int
    family: str
    kind: str
    detail: str


@dataclass(slots=True)
class _Slot:
    family: str
    expect: Expect
    answer: Answer | None
    outage_ok: bool
    insert: tuple[int, str] | None
    label: str = ""
    results: int = 0
    errors: int = 0
    dead: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    last: str = ""


def _cid_index(value: bytes | None) -> int | None:
    if value is None:
        return None
    match = _CID.match(value)
    return int(match.group(1)) if match else None


class Ledger:
    """What was sent, and what came back for it."""

    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._settled: set[int] = set()
        self.progress = asyncio.Event()
        self.not_sent: dict[int, str] = {}
        self.stray_replies: list[str] = []
        self.stray_dead_letters: list[str] = []
        self.dead_letter_reasons: Counter[str] = Counter()
        self.error_codes: Counter[str] = Counter()

    # -- sending ----------------------------------------------------------------------

    def expect(self, case: Case) -> None:
        self._slots[case.index] = _Slot(
            case.family, case.expect, case.answer, case.outage_ok, case.insert, case.label
        )

    def not_produced(self, index: int, reason: str) -> None:
        """The bus refused the record itself: nothing to account for."""
        self._slots.pop(index, None)
        self._settled.discard(index)
        self.not_sent[index] = reason
        self.progress.set()

    @property
    def sent(self) -> int:
        return len(self._slots)

    @property
    def settled(self) -> int:
        return len(self._settled)

    @property
    def outstanding(self) -> int:
        return len(self._slots) - len(self._settled)

    def unsettled(self) -> list[int]:
        return sorted(set(self._slots) - self._settled)

    def _settle(self, index: int) -> None:
        if index not in self._settled:
            self._settled.add(index)
            self.progress.set()

    # -- what came back ------------------------------------------------------------------

    def on_reply(self, record: Record) -> None:
        index = _cid_index(record.header(Headers.CORRELATION_ID))
        slot = None if index is None else self._slots.get(index)
        if index is None or slot is None:
            self.stray_replies.append(
                f"{record.topic}[{record.partition}]@{record.offset} "
                f"cid={record.header(Headers.CORRELATION_ID)!r:.80}"
            )
            return
        self._settle(index)
        try:
            reply = decode_reply(record.value or b"")
        except Exception as exc:
            slot.problems.append(("undecodable reply", f"{type(exc).__name__}: {exc}"))
            return
        if _cid_index(reply.id.encode()) != index:
            body_id = f"{reply.id!r:.80}"
            slot.problems.append(("reply id differs", f"header says {index}, body {body_id}"))
        if slot.results + slot.errors:
            slot.problems.append(("answered twice", "a second reply arrived"))
        if isinstance(reply, QueryResult):
            slot.results += 1
            rows = decode_rows(reply.rows)
            slot.last = f"result {reply.command!r} rows={_short(rows)}"
            if not slot.expect.may_succeed:
                slot.problems.append(
                    (
                        "succeeded but must not",
                        f"{reply.command!r} rows={_short(rows)} (expected {slot.expect.value})",
                    )
                )
            elif slot.answer is not None:
                wrong = slot.answer.mismatch(rows, reply.command)
                if wrong:
                    slot.problems.append(("wrong result", wrong))
            return
        slot.errors += 1
        err = reply.error
        self.error_codes[f"{err.code} {err.sqlstate or ''}".strip()] += 1
        slot.last = (
            f"error code={err.code} sqlstate={err.sqlstate} retriable={err.retriable}: "
            f"{err.message[:300]}"
        )
        if slot.expect is Expect.RESULT:
            slot.problems.append(("good request failed", slot.last))
            return
        if slot.expect is Expect.DEAD_LETTER:
            slot.problems.append(("answered although the reply address is unusable", slot.last))
        if err.code == "internal" or err.code not in ERROR_CODES:
            slot.problems.append(("untyped error", slot.last))
        elif err.code == "query" and not _SQLSTATE.match(err.sqlstate or ""):
            slot.problems.append(("query error without a SQLSTATE", slot.last))
        outage = err.retriable or (err.sqlstate or "").startswith("08")
        if outage and not slot.outage_ok:
            slot.problems.append(("caller's mistake reported as a retriable outage", slot.last))

    def on_dead_letter(self, record: Record) -> None:
        reason_raw = record.header(Headers.DLQ_REASON)
        reason = (reason_raw or b"").decode(errors="replace")
        self.dead_letter_reasons[_reason_kind(reason)] += 1
        raw_id = record.header(FUZZ_ID)
        index: int | None
        try:
            index = int(raw_id) if raw_id is not None else None
        except ValueError:
            index = None
        if index is None:
            # A reply that could not be delivered is dead-lettered under its correlation id.
            index = _cid_index(record.header(Headers.CORRELATION_ID))
        slot = None if index is None else self._slots.get(index)
        if index is None or slot is None:
            self.stray_dead_letters.append(f"@{record.offset} reason={reason[:200]!r}")
            return
        self._settle(index)
        slot.dead += 1
        slot.last = f"dead-lettered: {reason[:300]}"
        if not reason_raw:
            slot.problems.append(("dead letter without a reason", ""))
        elif reason.startswith(INTERNAL_ERROR_REASON):
            slot.problems.append(
                ("handled by the adapter's last-resort path (an unexpected exception)", reason)
            )
        if not slot.expect.may_be_dead_lettered and slot.expect is not Expect.ERROR:
            slot.problems.append(("dead-lettered instead of answered", reason[:300]))

    # -- verdicts --------------------------------------------------------------------------

    def answered_inserts(self) -> dict[int, str]:
        """id → note of every good INSERT that was answered with success."""
        return {
            s.insert[0]: s.insert[1]
            for s in self._slots.values()
            if s.insert is not None and s.results
        }

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for index, slot in sorted(self._slots.items()):
            for kind, detail in slot.problems:
                out.append(Problem(index, slot.family, kind, detail))
            if not (slot.results or slot.errors or slot.dead):
                out.append(
                    Problem(
                        index,
                        slot.family,
                        "lost: neither answered nor dead-lettered",
                        f"expected {slot.expect.value}",
                    )
                )
            elif slot.expect is Expect.ERROR and not slot.errors and not slot.results:
                out.append(
                    Problem(index, slot.family, "dead-lettered instead of a typed error", slot.last)
                )
            elif slot.expect is Expect.DEAD_LETTER and not slot.dead:
                out.append(Problem(index, slot.family, "not dead-lettered", slot.last))
        return out

    def succeeded_labels(self, family: str) -> Counter[str]:
        """label → how many records of ``family`` with it succeeded."""
        return Counter(s.label for s in self._slots.values() if s.family == family and s.results)

    def family_counts(self) -> dict[str, Counter[str]]:
        """family → how its records ended (result / error / dead letter / lost)."""
        counts: dict[str, Counter[str]] = {}
        for slot in self._slots.values():
            c = counts.setdefault(slot.family, Counter())
            c["sent"] += 1
            c["result"] += bool(slot.results)
            c["error"] += bool(slot.errors)
            c["dead letter"] += bool(slot.dead)
            c["lost"] += not (slot.results or slot.errors or slot.dead)
        return counts


def _reason_kind(reason: str) -> str:
    """A dead-letter reason without its variable parts, for counting."""
    text = re.sub(r"\d+", "N", reason)
    text = re.sub(r"'[^']*'", "'…'", text)
    return text[:90]


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"
