"""Helpers of the secured full scenario (``test_secured_scenario.py``): known
secrets and where to look for them, a real ``querybus serve`` process, and
reading whole topics.

Nothing here ever prints a secret: a finding names the secret by its label
(``"kafka password of adapter"``) and the place (file and line, topic,
partition and offset, header name).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tests.helpers import wait_for

from querybus.transport import KafkaTransport, Record

# -- secrets -------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """A value that must not appear somewhere; ``label`` says which it is
    (and is what a failure prints, never the value)."""

    label: str
    value: str = field(repr=False)

    def forms(self) -> list[bytes]:
        """The value as it could be written: as is, hex-encoded, base64."""
        raw = self.value.encode()
        return [
            raw,
            raw.hex().encode(),
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
        ]


def token_secrets(label: str, token: str) -> list[Secret]:
    """A JWT as a whole, and its signature (the text after the last '.')."""
    return [
        Secret(f"{label} (whole token)", token),
        Secret(f"{label} (signature)", token.rsplit(".", 1)[1]),
    ]


def found_in(data: str | bytes, secrets: Iterable[Secret]) -> list[str]:
    """Labels of the ``secrets`` that occur in ``data`` (in any of their forms)."""
    blob = data.encode(errors="surrogateescape") if isinstance(data, str) else data
    return [s.label for s in secrets if any(form in blob for form in s.forms())]


def redacted(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every secret replaced by its label: for failure messages."""
    for s in sorted(secrets, key=lambda s: len(s.value), reverse=True):
        text = text.replace(s.value, f"<{s.label}>")
    return text


@dataclass
class Findings:
    """Where secrets were found: ``place -> labels``."""

    places: dict[str, list[str]] = field(default_factory=dict)

    def check(self, place: str, data: str | bytes, secrets: Iterable[Secret]) -> None:
        labels = found_in(data, secrets)
        if labels:
            self.places.setdefault(place, []).extend(labels)

    def check_lines(self, place: str, text: str, secrets: Iterable[Secret]) -> None:
        """As :meth:`check`, line by line (the place names the line)."""
        secrets = list(secrets)
        for number, line in enumerate(text.splitlines(), 1):
            self.check(f"{place}, line {number}", line, secrets)

    def check_record(
        self, record: Record, secrets: Iterable[Secret], *, value: bool = True
    ) -> None:
        """A record's key, value (when ``value``) and every header's name and value."""
        secrets = list(secrets)
        where = f"topic {record.topic!r} partition {record.partition} offset {record.offset}"
        if record.key is not None:
            self.check(f"{where}, key", record.key, secrets)
        if value and record.value is not None:
            self.check(f"{where}, value", record.value, secrets)
        for name, header in record.headers:
            self.check(f"{where}, header name {name[:60]!r}", name, secrets)
            self.check(f"{where}, header {name[:60]!r}", header, secrets)

    def __bool__(self) -> bool:
        return bool(self.places)

    def report(self, limit: int = 60) -> str:
        """One line per place (the first ``limit``): where, and which secrets."""
        lines = [
            f"  {place}: {', '.join(sorted(set(labels)))}" for place, labels in self.places.items()
        ]
        if len(lines) > limit:
            lines[limit:] = [f"  … and {len(lines) - limit} more places"]
        return "\n".join(lines)


# -- reading whole topics ------------------------------------------------------------


async def end_offsets(transport: KafkaTransport, topic: str) -> dict[int, int]:
    """The offset after the last record of each partition of ``topic``."""
    count = await transport.partition_count(topic)
    consumer = AIOKafkaConsumer(**transport.options.consumer())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(count)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: int(offset) for tp, offset in ends.items()}


async def read_topic(
    transport: KafkaTransport, topic: str, *, timeout: float = 30.0
) -> list[Record]:
    """Every record of ``topic`` now on the broker, from the beginning (nobody
    may be producing to it any more)."""
    ends = await end_offsets(transport, topic)
    wanted = {p: end for p, end in ends.items() if end > 0}
    reader = transport.partition_reader(topic, sorted(ends), start_at="beginning")
    await reader.start()
    records: list[Record] = []
    try:

        async def read_more() -> bool:
            records.extend(await reader.getmany(0.2))
            last: dict[int, int] = {}
            for r in records:
                last[r.partition] = max(last.get(r.partition, -1), r.offset)
            return all(last.get(p, -1) >= end - 1 for p, end in wanted.items())

        await wait_for(read_more, timeout, interval=0, message=f"the records of {topic}")
    finally:
        await reader.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


# -- a real adapter process ----------------------------------------------------------

_HTTP = re.compile(r"health and metrics on http://([0-9.]+):(\d+)/health")


@dataclass
class AdapterProcess:
    """``python -m querybus serve …`` with its stdout and stderr in ``log``."""

    proc: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(
        cls, env: Mapping[str, str], cwd: Path, log: Path, *args: str
    ) -> AdapterProcess:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "querybus", "serve", *args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env), cwd=cwd,
            )  # fmt: skip
        return cls(proc, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def http_base(self, secrets: Iterable[Secret], timeout: float = 90.0) -> str:
        """``http://host:port`` of its /health and /metrics, from its start-up log line."""
        secrets = list(secrets)

        def announced() -> str | None:
            if self.proc.returncode is not None:
                tail = redacted(self.text()[-3000:], secrets)
                raise AssertionError(f"the adapter exited with {self.proc.returncode}:\n{tail}")
            match = _HTTP.search(self.text())
            return None if match is None else f"http://{match.group(1)}:{match.group(2)}"

        try:
            base: str = await wait_for(announced, timeout, interval=0.05, message="adapter start")
        except AssertionError as exc:
            raise AssertionError(
                redacted(str(exc), secrets) + "\n" + redacted(self.text()[-3000:], secrets)
            ) from None
        return base

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then kill; its exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode
