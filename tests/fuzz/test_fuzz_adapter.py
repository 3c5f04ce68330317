"""Issue 7's fuzz test: thousands of malformed and hostile requests, interleaved
with good ones, against one real adapter on real Kafka and PostgreSQL.

Records go straight to the request topic through a raw producer: random and
truncated bytes, wrong types in every field, huge and deeply nested values,
wrong reply addresses, junk headers and keys, and hostile SQL from
``tests/data/hostile_sql.txt`` (session changes, code execution,
multi-statement, comment and dollar-quote tricks). Every record is accounted
for — a reply on the test's reply partitions, or a record on the dead-letter
topic — and each must be what its generator says it may be
(:class:`~tests.fuzz.generator.Expect`). Afterwards the adapter must still
serve, have committed everything, have logged no errors, and every pooled
database session must be as it was at the start (role, search_path, settings,
prepared statements, cursors, temp objects, advisory locks, LISTEN).

Sending is paced (at most ``WINDOW`` records outstanding) so that deadlines
stay meaningful; a run in which nothing comes back for ``STALL`` seconds stops
and reports what is missing rather than hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tests.fuzz.conftest import FuzzSettings
from tests.fuzz.generator import Case, Generator, sql_shapes
from tests.fuzz.hostile import load_hostile_sql
from tests.fuzz.ledger import Ledger, Problem
from tests.fuzz.probe import find_crashing_sql
from tests.fuzz.sessions import describe_changes, pooled_sessions
from tests.helpers import wait_for
from tests.integration.conftest import Bus

from querybus.adapter.service import AdapterService
from querybus.config import TopicNames
from querybus.transport import PartitionReader, Record, Transport

pytestmark = pytest.mark.integration

#: Records sent but not yet answered or dead-lettered, at most.
WINDOW = 1_000
#: Seconds without any record being answered or dead-lettered before the run stops.
STALL = 30.0
#: Seconds for sending and draining 20,000 records before the run stops (scaled
#: with FUZZ_REQUESTS); pytest's own timeout must not cut the report off.
BUDGET_PER_20K = 200.0
#: Records sent at once.
SENDING = 256
#: Seconds the event loop may stay blocked (by one request's synchronous work)
#: before it is a failure: meanwhile no other request, heartbeat or commit moves.
LOOP_BLOCKED = 5.0
#: Adapter log records at WARNING or above, per record sent, before the log counts as a flood.
LOG_FLOOD = 2.0


@dataclass
class RunStats:
    seconds: float = 0.0
    stopped: str = ""
    end_offsets: dict[int, int] = field(default_factory=dict)


async def test_fuzzed_requests_leave_the_adapter_serving_and_its_sessions_unchanged(
    bus: Bus,
    make_table: Callable[[str], Awaitable[str]],
    pg: asyncpg.Connection,
    fuzz_settings: FuzzSettings,
) -> None:
    settings = fuzz_settings
    print(f"\nfuzz: {settings.repeat()}")
    failures: list[str] = []

    hostile = load_hostile_sql()
    table = await make_table("id bigint PRIMARY KEY, note text NOT NULL")
    probe_items = [(h.name, h.render(0, table), h.params) for h in hostile] + [
        (s.name, s.sql, ()) for s in sql_shapes()
    ]
    probe_started = time.monotonic()
    crashing = await find_crashing_sql(probe_items)
    print(
        f"fuzz: checked {len(probe_items)} statements in a child process in "
        f"{time.monotonic() - probe_started:.1f} s"
    )
    for name, how in sorted(crashing.items()):
        sql = next(sql for n, sql, _ in probe_items if n == name)
        failures.append(
            f"[SQL analysis kills the process] {name}: checking it ended the process with "
            f"{how}; sent to an adapter it would take the adapter down. Not sent. "
            f"SQL ({len(sql)} chars): {sql[:160]!r}…"
        )

    svc = await bus.adapter(pool_size=4)
    before = await pooled_sessions(svc)
    if len({s.comparable() for s in before}) != 1:
        failures.append(
            "[pool] the pooled sessions differ from each other at the start: "
            + "; ".join(describe_changes(before[:1], before))
        )
    first = before[0]
    gen = Generator(
        settings.seed,
        topics=bus.settings.topics,
        reply_partitions=bus.settings.response_partitions,
        table=table,
        baseline=(first.current_user_, first.session_user_, first.search_path),
        hostile=hostile,
        families=settings.families,
        blocked=crashing,
    )
    ledger = Ledger()
    transport = await bus.transport()
    budget = BUDGET_PER_20K * max(1.0, len(settings.indexes) / 20_000)
    watch = _LoopWatch()
    with _adapter_logs() as logs:
        async with watch.running():
            stats = await _run(
                transport, bus.settings.topics, gen, ledger, settings.indexes, budget, svc
            )
    print(
        f"fuzz: {ledger.sent} records sent, {ledger.settled} accounted for, "
        f"in {stats.seconds:.1f} s ({ledger.sent / max(stats.seconds, 1e-9):.0f}/s)"
    )

    if stats.stopped:
        failures.append(f"[run stopped] {stats.stopped}")
    failures.extend(_problem_report(ledger.problems(), gen))
    failures.extend(watch.problems(LOOP_BLOCKED))
    if len(ledger.not_sent) > max(10, ledger.sent // 100):
        failures.append(
            f"[test] the bus refused {len(ledger.not_sent)} of the test's own records: "
            + "; ".join(f"#{i}: {r}" for i, r in list(ledger.not_sent.items())[:5])
        )

    # The adapter still serves: its loop runs, and a plain client gets answers.
    loop = svc._loop_task
    if loop is None or loop.done():
        failures.append(f"[adapter] the consume loop is not running: {loop!r}")
    try:
        client = await bus.client(timeout=15.0)
        if await client.fetchval("SELECT $1::int + 1", 41) != 42:
            failures.append("[adapter] the final request got a wrong answer")
    except Exception as exc:
        failures.append(f"[adapter] the final request failed: {type(exc).__name__}: {exc}")

    # Everything it received is committed: nothing holds the group's offsets back.
    lagging = await _uncommitted(bus, stats.end_offsets)
    if lagging:
        failures.append(
            "[offsets] not committed within 15 s (partition: committed/end): "
            + ", ".join(f"{p}: {c}/{e}" for p, (c, e) in sorted(lagging.items()))
        )

    # Every pooled session is as it was.
    try:
        after = await pooled_sessions(svc)
    except Exception as exc:
        failures.append(f"[pool] could not read the pooled sessions: {type(exc).__name__}: {exc}")
    else:
        failures.extend(f"[pool] session changed: {d}" for d in describe_changes(before, after))

    # The private table holds exactly the rows of the good INSERTs that succeeded.
    rows = {r["id"]: r["note"] for r in await pg.fetch(f"SELECT id, note FROM {table}")}
    expected = ledger.answered_inserts()
    extra = sorted(set(rows) - set(expected))
    missing = sorted(set(expected) - set(rows))
    wrong = sorted(i for i in set(rows) & set(expected) if rows[i] != expected[i])
    if extra:
        failures.append(
            f"[table] {len(extra)} rows no good INSERT made (a negative id is a smuggled "
            f"INSERT of case -id): {extra[:20]}"
        )
    if missing or wrong:
        failures.append(
            f"[table] answered INSERTs missing: {missing[:20]}; with another note: {wrong[:20]}"
        )

    failures.extend(logs.problems(ledger.sent))
    print(_summary(settings, ledger, stats, logs))
    assert not failures, (
        f"{len(failures)} kinds of failure (the run's summary is in the captured stdout); "
        f"repeat with {settings.repeat()}, add FUZZ_CASES=<#s> to send only some cases\n"
        + "\n".join(failures)
    )


# -- running --------------------------------------------------------------------------


async def _run(
    transport: Transport,
    topics: TopicNames,
    gen: Generator,
    ledger: Ledger,
    indexes: list[int],
    budget: float,
    svc: AdapterService,
) -> RunStats:
    """Send every case, paced, and read replies and dead letters until all are in."""
    stats = RunStats()
    replies = transport.partition_reader(topics.response, start_at="end")
    dead = transport.partition_reader(topics.dead_letter, start_at="end")
    producer = transport.producer()
    readers: list[asyncio.Task[None]] = []
    quiet = _Quiet()
    started = time.monotonic()
    deadline = started + budget
    try:
        await replies.start()
        await dead.start()
        await producer.start()
        readers = [
            asyncio.create_task(_read(replies, ledger.on_reply, quiet)),
            asyncio.create_task(_read(dead, ledger.on_dead_letter, quiet)),
        ]
        slots = asyncio.Semaphore(SENDING)
        sending: set[asyncio.Task[None]] = set()

        async def send(case: Case) -> None:
            try:
                meta = await producer.send(
                    topics.request, case.value, key=case.key, headers=case.headers
                )
            except Exception as exc:  # the bus refused the test's own record
                ledger.not_produced(case.index, f"{type(exc).__name__}: {exc}"[:300])
            else:
                end = stats.end_offsets.get(meta.partition, 0)
                stats.end_offsets[meta.partition] = max(end, meta.offset + 1)
            finally:
                slots.release()

        for index in indexes:
            stats.stopped = await _wait_below(ledger, WINDOW, deadline)
            if stats.stopped:
                stats.stopped += f" (while sending: {ledger.sent} of {len(indexes)} sent)"
                break
            case = gen.case(index)
            ledger.expect(case)
            await slots.acquire()
            task = asyncio.create_task(send(case))
            sending.add(task)
            task.add_done_callback(sending.discard)
        if sending:
            await asyncio.gather(*sending)
        if not stats.stopped:
            stats.stopped = await _wait_below(ledger, 1, deadline)
        if stats.stopped:
            stats.stopped += f"; the adapter's requests in flight are waiting in: {_stuck(svc)}"
        stats.seconds = time.monotonic() - started
        # A record can end in two ways (a reply and a dead letter): take in
        # what is still coming until nothing has arrived for a second.
        await quiet.wait(1.0, 10.0)
    finally:
        for task in readers:
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for closeable in (producer, dead, replies):
            with contextlib.suppress(Exception):
                await closeable.stop()
    if stats.stopped:
        left = ledger.unsettled()
        stats.stopped += f"; {len(left)} records unaccounted for, e.g. " + "; ".join(
            f"#{i} {gen.case(i).family}: {gen.case(i).what[:120]}" for i in left[:8]
        )
    return stats


def _stuck(svc: AdapterService) -> str:
    """Where the adapter's in-flight request tasks are waiting, grouped."""
    where: Counter[str] = Counter()
    for tasks in list(svc._tasks.values()):
        for task in list(tasks):
            chain = []
            awaited: object = task.get_coro()
            while awaited is not None and hasattr(awaited, "cr_frame"):
                frame = awaited.cr_frame
                if frame is not None:
                    chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                awaited = getattr(awaited, "cr_await", None)
            where[" > ".join(chain) + (f" > {type(awaited).__name__}" if awaited else "")] += 1
    if not where:
        return "nothing (no request in flight)"
    return "; ".join(f"{n}x {chain}" for chain, n in where.most_common(5))


async def _wait_below(ledger: Ledger, limit: int, deadline: float) -> str:
    """Wait until fewer than ``limit`` records are outstanding; why it stopped, or "".

    Time during which the event loop was blocked (this process runs the
    adapter) does not count as the adapter being idle: the loop watch reports it.
    """
    idle = 0.0
    while True:
        ledger.progress.clear()
        if ledger.outstanding < limit:
            return ""
        if time.monotonic() >= deadline:
            return f"time budget used up with {ledger.outstanding} records outstanding"
        started = time.monotonic()
        try:
            await asyncio.wait_for(ledger.progress.wait(), 1.0)
            idle = 0.0
        except TimeoutError:
            took = time.monotonic() - started
            idle += took if took < 2.0 else 0.0
            if idle >= STALL:
                return (
                    f"nothing was answered or dead-lettered for {STALL:.0f} s with "
                    f"{ledger.outstanding} records outstanding"
                )


class _Quiet:
    """Set whenever a record arrives on a reader."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def wait(self, quiet: float, at_most: float) -> None:
        """Return once nothing arrived for ``quiet`` seconds (or after ``at_most``)."""
        end = time.monotonic() + at_most
        while time.monotonic() < end:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), quiet)
            except TimeoutError:
                return


async def _read(reader: PartitionReader, handle: Callable[[Record], None], quiet: _Quiet) -> None:
    while True:
        records = await reader.getmany(0.2)
        if records:
            quiet.arrived.set()
        for record in records:
            handle(record)


async def _uncommitted(bus: Bus, end_offsets: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Request partitions whose committed offset stays short of the end, after 15 s."""
    topic = bus.settings.topics.request
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap_servers)
    await admin.start()

    async def lagging() -> dict[int, tuple[int, int]]:
        offsets = await admin.list_consumer_group_offsets(bus.group_id)
        committed = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}
        return {
            p: (committed.get(p, -1), end)
            for p, end in end_offsets.items()
            if committed.get(p, -1) < end
        }

    try:
        await wait_for(lagging, 15.0, interval=0.2, accept=lambda v: not v)
    except AssertionError:
        return await lagging()  # still short after 15 s: which partitions, and by how much
    else:
        return {}
    finally:
        await admin.close()


# -- the event loop -----------------------------------------------------------------


class _LoopWatch:
    """Notices when the event loop (the adapter's, in this process) stops turning,
    and where: a thread samples the loop's stack while its heartbeat is late."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.blocks: list[tuple[float, str]] = []  # (seconds, where)
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(0.05)

    def _watch(self) -> None:
        blocked_since: float | None = None
        where = ""
        while not self._stop.wait(0.1):
            late = time.monotonic() - self._beat
            if late > self.threshold and blocked_since is None:
                blocked_since = self._beat
                frame = sys._current_frames().get(self._loop_thread)
                stack = traceback.extract_stack(frame)[-6:] if frame is not None else []
                where = " > ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack)
            elif late <= self.threshold and blocked_since is not None:
                self.blocks.append((self._beat - blocked_since, where))
                blocked_since = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[_LoopWatch]:
        beat = asyncio.create_task(self._heartbeat())
        thread = threading.Thread(target=self._watch, name="fuzz-loop-watch", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def problems(self, limit: float) -> list[str]:
        long = sorted((b for b in self.blocks if b[0] >= limit), reverse=True)
        if not long:
            return []
        return [
            f"[event loop] the adapter's event loop was blocked {len(long)} times for "
            f"{limit:g} s or more (every request, heartbeat and commit waits meanwhile); "
            + " || ".join(f"{secs:.1f} s in {where}" for secs, where in long[:4])
        ]


# -- the adapter's log ------------------------------------------------------------------


class _LogCounter(logging.Handler):
    """Counts what the adapter logs at WARNING and above, keeping a few examples."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.name, record.levelname, str(record.msg)[:100])] += 1
        if (
            record.levelno >= logging.ERROR
            and record.name.startswith("querybus")
            and len(self.errors) < 10
        ):
            text = record.getMessage()[:400]
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text += f" [{type(exc).__name__}: {str(exc)[:200]}]"
            self.errors.append(text)

    def warnings(self, prefix: str = "querybus") -> int:
        return sum(n for (name, _, _), n in self.counts.items() if name.startswith(prefix))

    def problems(self, sent: int) -> list[str]:
        out = []
        errors = {
            key: n
            for key, n in self.counts.items()
            if key[0].startswith("querybus") and key[1] in ("ERROR", "CRITICAL")
        }
        if errors:
            out.append(
                f"[log] the adapter logged {sum(errors.values())} errors on callers' input: "
                + "; ".join(f"{n}x {msg!r}" for (_, _, msg), n in errors.items())
                + " — e.g. "
                + " | ".join(self.errors[:3])
            )
        if self.warnings() > LOG_FLOOD * max(sent, 1) + 100:
            out.append(
                f"[log] the adapter logged {self.warnings()} warnings for {sent} records: "
                + "; ".join(f"{n}x {m!r}" for (_, _, m), n in self.counts.most_common(5))
            )
        return out


@contextlib.contextmanager
def _adapter_logs() -> Iterator[_LogCounter]:
    """Count the adapter's and aiokafka's log records instead of letting pytest
    keep tens of thousands of lines."""
    counter = _LogCounter()
    saved = []
    for name in ("querybus", "aiokafka"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(counter)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    try:
        yield counter
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(counter)
            logger.propagate = propagate
            logger.setLevel(level)


# -- reports -----------------------------------------------------------------------------


def _problem_report(problems: list[Problem], gen: Generator) -> list[str]:
    """One line per (family, kind of problem), with a count and a few examples."""
    groups: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        groups.setdefault((p.family, p.kind), []).append(p)
    out = []
    for (family, kind), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        examples = []
        for p in items[:3]:
            case = gen.case(p.index)
            examples.append(f"#{p.index} {case.what[:200]} → {p.detail[:300]}")
        out.append(f"[{family}] {kind}: {len(items)}x — " + " || ".join(examples))
    return out


def _summary(settings: FuzzSettings, ledger: Ledger, stats: RunStats, logs: _LogCounter) -> str:
    lines = [
        f"fuzz summary ({settings.repeat()}): {ledger.sent} sent, {ledger.settled} accounted "
        f"for, in {stats.seconds:.1f} s; {len(ledger.not_sent)} refused by the bus",
        "by family (sent / result / error / dead letter / lost):",
    ]
    for family, c in sorted(ledger.family_counts().items()):
        lines.append(
            f"  {family:14} {c['sent']:6} {c['result']:6} {c['error']:6} "
            f"{c['dead letter']:6} {c['lost']:6}"
        )
    lines.append(
        "dead-letter reasons: "
        + "; ".join(f"{n}x {r!r}" for r, n in ledger.dead_letter_reasons.most_common(8))
    )
    lines.append(
        "error replies: "
        + ", ".join(f"{code}: {n}" for code, n in ledger.error_codes.most_common(12))
    )
    ran = ledger.succeeded_labels("hostile")
    if ran:
        lines.append(
            "hostile entries that ran (allowed for `contain` ones only): "
            + ", ".join(f"{name} {n}x" for name, n in sorted(ran.items()))
        )
    refused = Counter(reason[:120] for reason in ledger.not_sent.values())
    if refused:
        lines.append("refused by the bus: " + "; ".join(f"{n}x {r}" for r, n in refused.items()))
    lines.append(
        f"strays: {len(ledger.stray_replies)} replies, {len(ledger.stray_dead_letters)} dead "
        f"letters {ledger.stray_dead_letters[:3]}; adapter warnings logged: {logs.warnings()}"
    )
    return "\n".join(lines)
