"""A seeded generator of fuzz records: record ``i`` depends only on (seed, i).

Each record is a :class:`Case`: the bytes, key and headers to produce to the
request topic, and what the adapter must do with it (:class:`Expect`), down to
the rows a success must return. Families are picked by weight; a few are
scheduled instead (very large records, statements that sleep), so that their
cost stays bounded whatever the number of requests.

Every record carries a ``fuzz-id`` header (the dead-letter topic keeps the
headers) and every correlation id starts with ``fz<i>:`` (replies carry it),
so whatever comes back can be matched to the record that caused it.
"""

from __future__ import annotations

import enum
import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from tests.fuzz.hostile import HostileSQL

from querybus.config import TopicNames
from querybus.protocol import Headers

__all__ = [
    "FAMILIES",
    "FUZZ_ID",
    "SCHEDULED",
    "Answer",
    "Case",
    "Expect",
    "Generator",
    "SqlShape",
    "sql_shapes",
]

#: Header naming the fuzz index of a record (copied to its dead letter).
FUZZ_ID = "fuzz-id"
#: Every generated correlation id starts with this, then the index and a colon.
CID_PREFIX = "fz"

#: A request's deadline, seconds after it was generated: far longer than any
#: queue the test lets build up (it paces its sending).
DEADLINE = 60.0
#: The deadline of a statement that would run until it (pg_sleep(1e9), …).
SLOW_DEADLINE = 3.0
#: One very large record (300 KB … 900 KB) every this many.
HUGE_EVERY = 2000
#: Each slow hostile statement once every this many.
SLOW_EVERY = 20_000


class Expect(enum.Enum):
    """What must become of a record."""

    RESULT = "a correct result"
    ERROR = "a typed error reply"
    REFUSED = "a typed error reply or a dead letter"
    DEAD_LETTER = "a dead letter"
    ANY = "a correct result, a typed error reply or a dead letter"

    @property
    def may_succeed(self) -> bool:
        return self in (Expect.RESULT, Expect.ANY)

    @property
    def may_be_dead_lettered(self) -> bool:
        return self in (Expect.REFUSED, Expect.DEAD_LETTER, Expect.ANY)

    @property
    def may_fail(self) -> bool:
        return self in (Expect.ERROR, Expect.REFUSED, Expect.ANY)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a success must look like: one of ``rows`` (any rows when empty),
    and a command tag starting with ``command``."""

    rows: tuple[list[list[Any]], ...] = ()
    command: str = ""

    def mismatch(self, rows: list[list[Any]], command: str) -> str | None:
        """Why a success with these rows and command tag is wrong, or None."""
        if self.command and not command.startswith(self.command):
            return f"command {command!r}, expected {self.command!r}…"
        if self.rows and rows not in self.rows:
            return f"rows {_short(rows)}, expected {' or '.join(_short(r) for r in self.rows)}"
        return None


@dataclass(slots=True)
class Case:
    """One generated record and what must become of it.

    Attributes:
        index: the fuzz index.
        family: which generator made it.
        what: a description for people.
        value: the record's value (None: a tombstone).
        headers: the record's headers (``fuzz-id`` first).
        key: the record's key.
        expect: what must become of it.
        answer: what a success must return (None: any success is right).
        outage_ok: an error reply may be retriable / an outage class (08, 57…).
        insert: (id, note) of the row a good INSERT adds.
        label: what to count outcomes by within the family (a hostile entry's name).
    """

    index: int
    family: str
    what: str
    value: bytes | None
    headers: list[tuple[str, bytes]]
    key: bytes | None = None
    expect: Expect = Expect.REFUSED
    answer: Answer | None = None
    outage_ok: bool = False
    insert: tuple[int, str] | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class SqlShape:
    """A long or deeply nested statement (the adapter parses every statement).

    Attributes:
        name: for reports.
        sql: the statement.
        expect: ERROR when a default adapter must refuse it, else ANY.
        answer: what a success must return.
    """

    name: str
    sql: str
    expect: Expect = Expect.ANY
    answer: Answer | None = None


def sql_shapes() -> list[SqlShape]:
    """Long and deep statements. Deep ones can crash a parser written in C,
    so the test runs every one through the adapter's checks in a child process
    first (:mod:`tests.fuzz.probe`)."""

    def rows(*values: Any) -> Answer:
        return Answer(rows=([list(values)],))

    return [
        SqlShape("plus-chain-2k", "SELECT " + "1+" * 2_000 + "1", answer=rows(2_001)),
        SqlShape("plus-chain-5k", "SELECT " + "1+" * 5_000 + "1", answer=rows(5_001)),
        SqlShape("plus-chain-30k", "SELECT " + "1+" * 30_000 + "1", answer=rows(30_001)),
        SqlShape("plus-chain-49k", "SELECT " + "1+" * 49_000 + "1", answer=rows(49_001)),
        SqlShape("concat-chain-19k", "SELECT " + "'a'||" * 19_000 + "'a'"),
        SqlShape("union-chain-1k", "SELECT 1" + " UNION ALL SELECT 1" * 1_000),
        SqlShape("parentheses-4k", "SELECT " + "(" * 4_000 + "1" + ")" * 4_000, answer=rows(1)),
        SqlShape("unary-minus-20k", "SELECT " + "- " * 20_000 + "1", answer=rows(1)),
        SqlShape("not-chain-20k", "SELECT " + "NOT " * 20_000 + "true"),
        SqlShape("and-chain-10k", "SELECT " + "true AND " * 10_000 + "true", answer=rows(True)),
        SqlShape("case-nest-3k", "SELECT " + "CASE WHEN true THEN " * 3_000 + "1" + " END" * 3_000),
        SqlShape("function-nest-5k", "SELECT " + "abs(" * 5_000 + "1" + ")" * 5_000),
        SqlShape("subselect-nest-1k", "SELECT " + "(SELECT " * 1_000 + "1" + ")" * 1_000),
        SqlShape("array-nest-3k", "SELECT " + "ARRAY[" * 3_000 + "1" + "]" * 3_000),
        SqlShape(
            "in-list-10k", "SELECT 1 IN (" + ",".join(["1"] * 10_000) + ")", answer=rows(True)
        ),
        SqlShape(
            "cte-list-1k",
            "WITH " + ", ".join(f"c{i} AS (SELECT {i})" for i in range(1_000)) + " SELECT 1",
            answer=rows(1),
        ),
        SqlShape("comment-90k", "SELECT 1 /*" + "x" * 90_000 + "*/", answer=rows(1)),
        SqlShape("literal-90k", "SELECT '" + "x" * 90_000 + "'", answer=rows("x" * 90_000)),
        SqlShape("over-length-limit", "SELECT 1" + " " * 100_001, expect=Expect.ERROR),
        SqlShape("statements-2k", "SELECT 1;" * 2_000, expect=Expect.ERROR),
        SqlShape("whitespace-only", "  \n\t \r\n ", expect=Expect.ERROR),
    ]


# -- building blocks -----------------------------------------------------------------

_TEXT_POOLS: tuple[Sequence[str], ...] = (
    [chr(c) for c in range(0x20, 0x7F)],
    list("'\";$\\%_-/*\t\n\r"),
    [chr(c) for c in range(0xA0, 0x100)],
    [chr(c) for c in range(0x391, 0x3CA)],
    [chr(c) for c in range(0x4E00, 0x4E80)],
    [chr(c) for c in range(0x1F600, 0x1F650)],
    [chr(c) for c in range(0x300, 0x370)],  # combining marks
    ["\u200b", "\u200d", "\u202e", "\ufeff", "\u2028", "\U0010fffd"],
)


def _text(rng: random.Random, longest: int = 60) -> str:
    """Text PostgreSQL can store (no NUL, no lone surrogates), often awkward."""
    n = rng.choice((0, 1, rng.randint(0, longest), rng.randint(0, longest)))
    pools = rng.sample(_TEXT_POOLS, rng.randint(1, 3))
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


_RAW = "__fuzz_raw_token__"

#: JSON values of every type, to put where another type belongs.
_WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**63,
    1.5,
    -0.0,
    1e308,
    "",
    "x",
    "1",
    "SELECT 1",
    [],
    [1],
    [[[]]],
    {},
    {"a": 1},
    {"topic": "x", "partition": 0},
)
#: Raw JSON tokens Python would not write: out-of-range and non-standard numbers.
_RAW_TOKENS: tuple[str, ...] = (
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-0",
    "1E400",
    "123456789012345678901234567890",
    "1" * 5_000,
    "0x10",
    "01",
    ".5",
    "+1",
    "tru",
    "nul",
    '"\\u0000"',
    '"\\ud800"',
    '"\\x41"',
    "[1,]",
    "{,}",
    '{"a":1,}',
)
#: Field → the JSON types msgspec accepts there (values of other types are "wrong").
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "v": (int,),
    "id": (str,),
    "client": (str,),
    "op": (type(None),),
    "sql": (str,),
    "params": (list,),
    "many": (bool,),
    "reply_to": (),
    "reply_to.topic": (str,),
    "reply_to.partition": (int,),
    "deadline": (int, float),
    "sent_at": (int, float),
    "idem": (str, type(None)),
    "route": (),
    "max_staleness": (int, float, type(None)),
    "min_lsn": (str, type(None)),
}
_ENUM_VALUES = ("select", "SELECT ", "DROP", "", "auto ", "AUTO", "replica;", "Primary")


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if type(value) is bool:
        return bool in types
    return isinstance(value, types)


def _encode(doc: Any, raw: str | None = None) -> bytes:
    data = msgspec.json.encode(doc)
    if raw is not None:
        data = data.replace(msgspec.json.encode(_RAW), raw.encode(), 1)
    return data


def _nest_list(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _nest_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


class Generator:
    """Makes the fuzz records of one run.

    Args:
        seed: the run's seed; record ``i`` depends only on it and ``i``.
        topics: the test's topics.
        reply_partitions: partitions of its response topic (replies may go to any).
        table: the test's private table (good INSERTs, smuggled ones).
        baseline: (current_user, session_user, search_path) of a pooled session
            at the start: what a "who am I" request must return all along.
        hostile: the entries of the hostile SQL file.
        families: the families to draw from (default: all).
        blocked: names of hostile entries and SQL shapes not to send (they kill
            the process that parses them).
    """

    def __init__(
        self,
        seed: int,
        *,
        topics: TopicNames,
        reply_partitions: int,
        table: str,
        baseline: tuple[str, str, str],
        hostile: Sequence[HostileSQL],
        families: Collection[str] | None = None,
        blocked: Collection[str] = (),
    ) -> None:
        self.seed = seed
        self.topics = topics
        self.reply_partitions = reply_partitions
        self.table = table
        self.baseline = baseline
        self.hostile = [h for h in hostile if not h.slow and h.name not in blocked]
        self.slow = [h for h in hostile if h.slow and h.name not in blocked]
        self.shapes = [s for s in sql_shapes() if s.name not in blocked]
        chosen = {*FAMILIES, *SCHEDULED} if families is None else set(families)
        unknown = chosen - set(FAMILIES) - set(SCHEDULED)
        if unknown:
            raise ValueError(f"unknown fuzz families: {sorted(unknown)}")
        self.families = chosen
        drawn = [(name, weight) for name, weight in FAMILIES.items() if name in chosen]
        if not drawn:
            raise ValueError("no fuzz family to draw from")
        self._names = [name for name, _ in drawn]
        self._weights = [weight for _, weight in drawn]

    # -- dispatch ------------------------------------------------------------------

    def case(self, index: int) -> Case:
        """The record for fuzz index ``index``."""
        rng = random.Random(f"{self.seed}:{index}")
        scheduled = self._scheduled(index)
        family = scheduled or rng.choices(self._names, self._weights)[0]
        case: Case = _MAKERS[family](self, rng, index)
        case.family = family
        case.headers.insert(0, (FUZZ_ID, str(index).encode()))
        return case

    def _scheduled(self, index: int) -> str | None:
        if "huge" in self.families and index % HUGE_EVERY == HUGE_EVERY - 1:
            return "huge"
        if "hostile_slow" in self.families and self._slow_entry(index) is not None:
            return "hostile_slow"
        if "expensive" in self.families and self._dos_input(index) is not None:
            return "expensive"
        return None

    def _dos_input(self, index: int) -> tuple[str, str, list[Any]] | None:
        step, rest = divmod(index % SLOW_EVERY, 1000)
        if rest == 700 and 1 <= step <= len(_DOS):
            return _DOS[step - 1]
        return None

    def _slow_entry(self, index: int) -> HostileSQL | None:
        step, rest = divmod(index % SLOW_EVERY, 1000)
        if rest == 500 and 1 <= step <= len(self.slow):
            return self.slow[step - 1]
        return None

    # -- requests ------------------------------------------------------------------

    def cid(self, index: int, suffix: str = "") -> str:
        return f"{CID_PREFIX}{index}:{suffix}"

    def _doc(
        self,
        rng: random.Random,
        index: int,
        sql: str,
        params: list[Any],
        *,
        op: str | None = None,
        deadline: float = DEADLINE,
    ) -> dict[str, Any]:
        """A valid request whose reply comes to one of the test's reply partitions."""
        now = time.time()
        topic, partition = self.topics.response, rng.randrange(self.reply_partitions)
        doc: dict[str, Any] = {
            "v": 1,
            "id": self.cid(index),
            "client": "fuzz",
            "sql": sql,
            "params": params,
            "reply_to": {"topic": topic, "partition": partition},
            "deadline": now + deadline,
            "sent_at": now,
        }
        if op is not None:
            doc["op"] = op
        return doc

    def _headers(self, doc: dict[str, Any], index: int) -> list[tuple[str, bytes]]:
        """The headers a real client sends with ``doc`` (its correlation id even
        when the body's is missing or mistyped)."""
        reply = doc.get("reply_to")
        cid = doc.get("id")
        if not isinstance(cid, str) or cid == _RAW:
            cid = self.cid(index)
        headers = [(Headers.CORRELATION_ID, cid.encode())]
        if isinstance(reply, dict):
            headers.append((Headers.REPLY_TOPIC, str(reply.get("topic", "")).encode()))
            headers.append((Headers.REPLY_PARTITION, str(reply.get("partition", "")).encode()))
        headers.append((Headers.CLIENT_ID, b"fuzz"))
        return headers

    def _request_case(
        self,
        index: int,
        what: str,
        doc: dict[str, Any],
        expect: Expect,
        answer: Answer | None = None,
        *,
        raw: str | None = None,
        outage_ok: bool = False,
    ) -> Case:
        return Case(
            index=index,
            family="",
            what=what,
            value=_encode(doc, raw),
            headers=self._headers(doc, index),
            expect=expect,
            answer=answer,
            outage_ok=outage_ok,
        )

    def _idem(self, index: int) -> str:
        # Keys are kept for a day by the durable store: unique per run, not per seed.
        return f"fz-{self.table}-{index}"

    def _plus_one(self, rng: random.Random, index: int) -> tuple[dict[str, Any], Answer]:
        p = rng.randint(-(2**31), 2**31 - 2)
        doc = self._doc(rng, index, "SELECT $1::int + 1", [p], op=rng.choice((None, "SELECT")))
        return doc, Answer(rows=([[p + 1]],))

    def _echo(self, rng: random.Random, index: int) -> tuple[dict[str, Any], Answer]:
        text = _text(rng)
        doc = self._doc(rng, index, "SELECT $1::text", [text])
        return doc, Answer(rows=([[text]],))

    def _valid(self, rng: random.Random, index: int) -> tuple[dict[str, Any], Answer]:
        return (self._plus_one if rng.random() < 0.6 else self._echo)(rng, index)

    # -- good requests -----------------------------------------------------------

    def good_select(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._plus_one(rng, index)
        if rng.random() < 0.1:
            doc["idem"] = self._idem(index)
        if rng.random() < 0.2:
            doc["route"] = rng.choice(("auto", "primary", "replica"))
        return self._request_case(
            index, f"SELECT $1::int + 1 with {doc['params']}", doc, Expect.RESULT, answer
        )

    def good_echo(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._echo(rng, index)
        return self._request_case(
            index, f"SELECT $1::text with {_short(doc['params'])}", doc, Expect.RESULT, answer
        )

    def good_insert(self, rng: random.Random, index: int) -> Case:
        note = _text(rng, 100)
        doc = self._doc(
            rng,
            index,
            f"INSERT INTO {self.table} (id, note) VALUES ($1, $2)",
            [index, note],
            op=rng.choice((None, "INSERT")),
        )
        if rng.random() < 0.3:
            doc["idem"] = self._idem(index)
        case = self._request_case(
            index,
            f"INSERT id {index}" + (" with an idempotency key" if "idem" in doc else ""),
            doc,
            Expect.RESULT,
            Answer(command="INSERT 0 1"),
        )
        case.insert = (index, note)
        return case

    def good_whoami(self, rng: random.Random, index: int) -> Case:
        doc = self._doc(
            rng,
            index,
            "SELECT current_user::text, session_user::text, current_setting('search_path')",
            [],
        )
        return self._request_case(
            index,
            "who am I (role and search_path of the pooled session)",
            doc,
            Expect.RESULT,
            Answer(rows=([list(self.baseline)],)),
        )

    # -- garbage -----------------------------------------------------------------------

    def _garbage(self, index: int, what: str, value: bytes | None) -> Case:
        return Case(index=index, family="", what=what, value=value, headers=[])

    def random_bytes(self, rng: random.Random, index: int) -> Case:
        n = rng.choice((0, 1, 2, rng.randint(3, 64), rng.randint(64, 2048)))
        value = rng.randbytes(n)
        if rng.random() < 0.3:
            value = b"{" + value
        return self._garbage(index, f"{len(value)} random bytes", value)

    def truncated(self, rng: random.Random, index: int) -> Case:
        doc, _ = self._valid(rng, index)
        data = _encode(doc)
        cut = rng.randrange(len(data))
        case = self._garbage(index, f"a request cut at byte {cut} of {len(data)}", data[:cut])
        if rng.random() < 0.3:  # the caller names itself in the headers: it is answered too
            case.headers = self._headers(doc, index)
        return case

    def bitflip(self, rng: random.Random, index: int) -> Case:
        doc, _ = self._valid(rng, index)
        data = bytearray(_encode(doc))
        # The correlation id and the reply address stay intact, so that
        # whatever the adapter makes of it can still come back.
        keep: list[range] = []
        for part in (msgspec.json.encode(doc["id"]), msgspec.json.encode(doc["reply_to"])):
            start = bytes(data).find(part)
            keep.append(range(start, start + len(part)))
        spots = [i for i in range(len(data)) if not any(i in r for r in keep)]
        flips = rng.sample(spots, rng.randint(1, 4))
        for i in flips:
            flip = rng.randrange(256) if rng.random() < 0.5 else data[i] ^ (1 << rng.randrange(8))
            data[i] = flip
        return Case(
            index=index,
            family="",
            what=f"a request with bytes {sorted(flips)} changed",
            value=bytes(data),
            headers=self._headers(doc, index),
            expect=Expect.ANY,
        )

    def json_values(self, rng: random.Random, index: int) -> Case:
        choices = [
            "null",
            "true",
            "0",
            "-1.5e300",
            '""',
            '"SELECT 1"',
            "[]",
            "[1,2,3]",
            "{}",
            '{"v":1}',
            '{"v":1,"id":"x"}',
            '{"":""}',
            '{"sql":"SET ROLE pg_monitor"}',
            "  ",
            "\ufeff{}",
            '{"v":1}{"v":1}',
        ]
        random_json = rng.random() < 0.5
        text = json.dumps(self._random_json(rng, 4)) if random_json else rng.choice(choices)
        return self._garbage(index, f"JSON that is no request: {_short(text)}", text.encode())

    def _random_json(self, rng: random.Random, depth: int) -> Any:
        kind = rng.randrange(7 if depth > 0 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:
            return rng.choice((rng.randint(-(2**70), 2**70), rng.uniform(-1e300, 1e300)))
        if kind in (3, 4):
            return _text(rng, 20)
        if kind == 5:
            return [self._random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))]
        return {_text(rng, 8): self._random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))}

    def wrong_type(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._valid(rng, index)
        path = rng.choice(list(_FIELD_TYPES))
        raw: str | None = None
        if rng.random() < 0.25 and path != "id":  # a reply's id must stay matchable
            raw, value = rng.choice(_RAW_TOKENS), _RAW
        elif path in ("op", "route") and rng.random() < 0.5:
            value = rng.choice(_ENUM_VALUES)
        else:
            allowed = _FIELD_TYPES[path]
            value = rng.choice([v for v in _WRONG_VALUES if not _type_ok(v, allowed)])
        if path.startswith("reply_to.") and isinstance(doc["reply_to"], dict):
            doc["reply_to"][path.split(".", 1)[1]] = value
        else:
            doc[path] = value
        shown = raw if raw is not None else _short(value, 60)
        # msgspec may take a value of another type (an int where a float
        # goes): then the request is valid and its answer must be right.
        return self._request_case(index, f"{path} = {shown}", doc, Expect.ANY, answer, raw=raw)

    def missing_field(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._valid(rng, index)
        name = rng.choice((*doc, "reply_to.topic", "reply_to.partition"))
        if name.startswith("reply_to."):
            del doc["reply_to"][name.split(".", 1)[1]]
        else:
            del doc[name]
        return self._request_case(index, f"without {name}", doc, Expect.ANY, answer)

    def bad_version(self, rng: random.Random, index: int) -> Case:
        doc, _ = self._valid(rng, index)
        doc["v"] = rng.choice((0, 2, 99, -1, 2**31, -(2**63), 2**100))
        return self._request_case(index, f"schema version {doc['v']}", doc, Expect.REFUSED)

    def deep_json(self, rng: random.Random, index: int) -> Case:
        depth = rng.choice((33, 64, 500, 900, 990, 998, 999, 1000, 5_000, 100_000))
        where = rng.choice(("body", "body-object", "param", "param-json", "sql", "unclosed"))
        if where == "body":
            return self._garbage(index, f"an array nested {depth} deep", _nest_list(depth).encode())
        if where == "body-object":
            return self._garbage(
                index, f"an object nested {depth} deep", _nest_object(depth).encode()
            )
        if where == "unclosed":
            return self._garbage(index, f"{depth} unclosed brackets", b"[" * depth)
        doc, _ = self._plus_one(rng, index)
        if where == "param":
            raw = _nest_list(depth)
        elif where == "param-json":
            raw = '{"$json":' + _nest_object(depth) + "}"
        else:
            raw = _nest_list(depth)
        if where == "sql":
            doc["sql"] = _RAW
        else:
            doc["params"] = [_RAW]
        return self._request_case(
            index, f"{where} nested {depth} deep", doc, Expect.REFUSED, raw=raw
        )

    def tombstone(self, rng: random.Random, index: int) -> Case:
        case = self._garbage(index, "a tombstone (no value)", None)
        case.key = b"tombstone"  # Kafka needs a key or a value
        if rng.random() < 0.5:
            doc, _ = self._valid(rng, index)
            case.headers = self._headers(doc, index)
        return case

    def encoding(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._echo(rng, index)
        text = msgspec.json.encode(doc).decode()
        how = rng.choice(
            ("utf-16", "utf-32", "bom", "latin-1", "overlong", "trailing", "spaces", "comment")
        )
        if how in ("utf-16", "utf-32"):
            data = text.encode(how)
        elif how == "bom":
            data = b"\xef\xbb\xbf" + text.encode()
        elif how == "latin-1":
            data = text.encode("latin-1", errors="replace") + b"\xe9"
        elif how == "overlong":
            data = text.replace("SELECT", "SEL\u0000ECT", 1).encode().replace(b"\x00", b"\xc0\x80")
        elif how == "trailing":
            data = text.encode() + b"xyz"
        elif how == "spaces":
            data = b" \n\t" + text.encode() + b" \r\n"
        else:
            data = b"/* hello */" + text.encode()
        return Case(
            index=index,
            family="",
            what=f"a request encoded as {how}",
            value=data,
            headers=self._headers(doc, index),
            expect=Expect.ANY,
            answer=answer,
        )

    def header_junk(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._valid(rng, index)
        kind = rng.choice(("answer-me", "bad-address", "junk-headers", "junk-key"))
        if kind == "answer-me":
            # An undecodable body whose headers name the caller: dead-lettered, and answered.
            return Case(
                index=index,
                family="",
                what="an undecodable body with a reply address in its headers",
                value=_encode(doc)[: rng.randrange(1, 40)],
                headers=self._headers(doc, index),
                expect=Expect.REFUSED,
            )
        if kind == "bad-address":
            topic, partition = rng.choice(
                (
                    (self.topics.response.encode(), b"x"),
                    (self.topics.response.encode(), b"-1"),
                    (self.topics.response.encode(), b"99999999999999999999"),
                    (self.topics.response.encode(), b" 1"),
                    (self.topics.response.encode(), b"1e3"),
                    (self.topics.response.encode(), b"\xff"),
                    (b"", b"0"),
                    (b"\xff\xfe", b"0"),
                    (f"t-fuzz-nowhere-{index}".encode(), b"0"),
                    (self.topics.request.encode(), b"0"),
                    (self.topics.dead_letter.encode(), b"0"),
                )
            )
            cid = rng.choice((self.cid(index).encode(), b"", b"\xff\xfe", b"x" * 20_000))
            return Case(
                index=index,
                family="",
                what=f"an undecodable body, reply headers {_short(topic, 40)}[{partition!r}]",
                value=rng.randbytes(rng.randint(0, 100)),
                headers=[
                    (Headers.CORRELATION_ID, cid),
                    (Headers.REPLY_TOPIC, topic),
                    (Headers.REPLY_PARTITION, partition),
                ],
                expect=Expect.REFUSED,
            )
        case = self._request_case(index, "", doc, Expect.ANY, answer)
        if kind == "junk-headers":
            count = rng.choice((1, 10, 500))
            junk = [(_text(rng, 20), rng.randbytes(rng.randint(0, 50))) for _ in range(count)]
            # Conflicting copies of querybus' own headers, after the real ones.
            junk.append((Headers.REPLY_PARTITION, b"-7"))
            junk.append((Headers.CORRELATION_ID, b"\xff"))
            case.headers.extend(junk)
            case.what = f"a valid request with {len(junk)} junk headers"
        else:
            case.key = rng.choice((b"", rng.randbytes(16), b"\x00" * 10_000))
            case.what = f"a valid request with a {len(case.key)}-byte junk key"
        return case

    def dup_keys(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._plus_one(rng, index)
        data = msgspec.json.encode(doc).decode()
        smuggled = "\"sql\":\"SELECT set_config('role', 'pg_monitor', false)\","
        if rng.random() < 0.5:
            data = "{" + smuggled + data[1:]
        else:
            data = data[:-1] + "," + smuggled[:-1] + "}"
        # Whichever copy wins, the policy must see the statement that runs.
        return Case(
            index=index,
            family="",
            what="a request with two sql fields, one of them set_config('role', …)",
            value=data.encode(),
            headers=self._headers(doc, index),
            expect=Expect.ANY,
            answer=answer,
        )

    # -- well-formed but bad -------------------------------------------------------------

    def hostile(self, rng: random.Random, index: int) -> Case:
        entry = rng.choice(self.hostile)
        return self._hostile_case(rng, index, entry, DEADLINE)

    def hostile_slow(self, rng: random.Random, index: int) -> Case:
        entry = self._slow_entry(index)
        assert entry is not None
        return self._hostile_case(rng, index, entry, SLOW_DEADLINE)

    def _hostile_case(
        self, rng: random.Random, index: int, entry: HostileSQL, deadline: float
    ) -> Case:
        sql = entry.render(index, self.table)
        wrap = rng.random()
        if wrap < 0.15:
            sql = f"/* fuzz {index} */ {sql}"
        elif wrap < 0.25:
            sql = f"\n  {sql}\n"
        elif wrap < 0.35:
            sql = f"{sql};"
        op = rng.choice((None, None, None, "SELECT", "OTHER", "DDL"))
        doc = self._doc(rng, index, sql, list(entry.params), op=op, deadline=deadline)
        case = self._request_case(
            index,
            f"hostile {entry.name} (line {entry.line}), op={op}: {_short(sql, 200)}",
            doc,
            Expect.ERROR if entry.refuse else Expect.ANY,
            outage_ok=entry.outage_ok,
        )
        case.label = entry.name
        return case

    def expensive(self, rng: random.Random, index: int) -> Case:
        entry = self._dos_input(index)
        assert entry is not None
        name, sql, params = entry
        doc = self._doc(rng, index, sql, params)
        # A few bytes that cost the adapter a lot of CPU: refused, and quickly
        # (the test fails when the event loop stays blocked; see LOOP_BLOCKED).
        what = f"expensive {name}: {sql} with {params}"
        return self._request_case(index, what, doc, Expect.REFUSED)

    def hostile_nul(self, rng: random.Random, index: int) -> Case:
        entry = rng.choice(self.hostile)
        sql = entry.render(index, self.table)
        how = rng.choice(("after", "before", "inside"))
        if how == "after":
            sql = f"SELECT 1\u0000; {sql}"
        elif how == "before":
            sql = f"{sql}\u0000 SELECT 1"
        else:
            cut = rng.randrange(len(sql) + 1)
            sql = sql[:cut] + "\u0000" + sql[cut:]
        doc = self._doc(rng, index, sql, list(entry.params))
        # The server reads a statement up to its first NUL; the checks must not
        # read it differently: the only right answer is a refusal.
        return self._request_case(
            index, f"NUL {how} hostile {entry.name}: {_short(sql, 200)}", doc, Expect.ERROR
        )

    def sql_shape(self, rng: random.Random, index: int) -> Case:
        shape = rng.choice(self.shapes)
        doc = self._doc(rng, index, shape.sql, [])
        what = f"SQL shape {shape.name} ({len(shape.sql)} chars)"
        return self._request_case(index, what, doc, shape.expect, shape.answer)

    def bad_params(self, rng: random.Random, index: int) -> Case:
        doc, _ = self._plus_one(rng, index)
        choices: list[tuple[list[Any], Answer | None]] = [
            ([], None),
            ([1, 2], None),
            ([None], Answer(rows=([[None]],))),
            (["5"], None),
            ([""], None),
            (["9" * 1000], None),
            ([1.5], None),  # never silently 1
            ([5.0], Answer(rows=([[6]],))),
            ([True], Answer(rows=([[2]],))),
            ([2**31 - 1], None),
            ([2**31], None),
            ([-(2**31)], Answer(rows=([[-(2**31) + 1]],))),
            ([2**63 - 1], None),
            ([2**64], None),
            ([-(2**100)], None),
            ([[1]], None),
            ([[[1, 2], [3]]], None),
            ([{"$dec": "5"}], Answer(rows=([[6]],))),
            ([{"$dec": "NaN"}], None),
            ([{"$dec": "5.5"}], None),  # never silently 5
            ([{"$float": "nan"}], None),
            ([{"$float": "-inf"}], None),
            ([{"$json": 1}], Answer(rows=([[2]],))),
            ([{"$bytes": "AAAA"}], None),
            ([{"$uuid": "00000000-0000-0000-0000-000000000000"}], None),
        ]
        params, answer = rng.choice(choices)
        doc["params"] = params
        return self._request_case(
            index,
            f"SELECT $1::int + 1 with params {_short(params, 60)}",
            doc,
            Expect.ANY if answer is not None else Expect.REFUSED,
            answer,
        )

    def bad_tags(self, rng: random.Random, index: int) -> Case:
        doc, _ = self._echo(rng, index)
        tags: list[Any] = [
            {"$td": {"a": 1}},
            {"$td": [1]},
            {"$td": "abc"},
            {"$td": [1e308, 0, 0]},
            {"$td": [None, 0, 0]},
            {"$td": [999_999_999, 0, 0]},
            {"$uuid": 5},
            {"$uuid": []},
            {"$uuid": "not-a-uuid"},
            {"$dec": []},
            {"$dec": {"a": 1}},
            {"$dec": "1" * 10_000},
            {"$dt": 5},
            {"$dt": "x"},
            {"$dt": "9999-12-31T23:59:59+14:00"},
            {"$date": []},
            {"$date": "0000-00-00"},
            {"$time": {}},
            {"$time": "25:61"},
            {"$bytes": 5},
            {"$bytes": "***"},
            {"$bytes": None},
            {"$float": None},
            {"$float": "x"},
            {"$float": []},
            {"$nope": 1},
            {},
            {"$dec": "1", "$uuid": "x"},
            {"$json": {"$json": 1}},
            [{"$td": {}}, {"$uuid": 1}],
        ]
        value = rng.choice(tags)
        doc["params"] = [value]
        return self._request_case(
            index, f"SELECT $1::text with a tagged value {_short(value, 60)}", doc, Expect.REFUSED
        )

    def edge_fields(self, rng: random.Random, index: int) -> Case:
        doc, answer = self._plus_one(rng, index)
        now = time.time()
        edits: list[tuple[str, Any, Expect]] = [
            ("deadline", now - rng.uniform(0.001, 1e6), Expect.ERROR),
            ("deadline", 0, Expect.ERROR),
            ("deadline", -1e308, Expect.ERROR),
            ("deadline", 1e308, Expect.ANY),
            ("deadline", 2**53, Expect.ANY),
            ("sent_at", -1e308, Expect.ANY),
            ("sent_at", 1e308, Expect.ANY),
            ("sent_at", now + 1e6, Expect.ANY),
            ("max_staleness", -1.0, Expect.ANY),
            ("max_staleness", 1e308, Expect.ANY),
            ("min_lsn", "", Expect.ANY),
            ("min_lsn", "garbage", Expect.ANY),
            ("min_lsn", "FFFFFFFF/FFFFFFFF", Expect.ANY),
            ("min_lsn", "1/" + "F" * 1000, Expect.ANY),
            ("idem", "", Expect.ANY),
            ("idem", f"{index}:" + "k" * 10_000, Expect.ANY),
            ("idem", f"{index}:\u0000\u202e\U0001f600", Expect.ANY),
            ("route", "replica", Expect.ANY),
            ("route", "primary", Expect.ANY),
            ("op", rng.choice(("INSERT", "UPDATE", "DELETE", "DDL", "OTHER")), Expect.ERROR),
            ("client", "", Expect.ANY),
            ("client", "c" * 10_000, Expect.ANY),
            ("client", "\u0000\u202e\U0001f600", Expect.ANY),
            ("id", self.cid(index, "\u0000\u202e\U0001f600"), Expect.ANY),
            ("id", self.cid(index, "i" * 10_000), Expect.ANY),
            ("many", True, Expect.ERROR),  # a list of values, not of lists
            ("x-unknown", {"sql": "SET ROLE pg_monitor"}, Expect.ANY),
            ("v", None, Expect.ANY),  # removed below: the default version
        ]
        name, value, expect = rng.choice(edits)
        if name == "v":
            del doc["v"]
        else:
            doc[name] = value
        many = rng.random() < 0.1
        if many and name != "many":
            doc["many"] = True
            doc["params"] = rng.choice(([[1], [2], [3]], [], [[i] for i in range(10_001)]))
            expect = Expect.ANY if len(doc["params"]) <= 10_000 else Expect.ERROR
        what = f"{name} = {_short(value, 60)}"
        if many:
            what += f", many with {len(doc['params'])} lists"
        return self._request_case(
            index,
            what,
            doc,
            expect,
            answer if expect is Expect.ANY and not many else None,
        )

    def bad_reply_to(self, rng: random.Random, index: int) -> Case:
        t = self.topics
        topic, partition = rng.choice(
            (
                (f"{t.response}.qb-fuzz-nowhere-{index}", 0),
                (f"t-fuzz-nowhere-{index}", 0),
                ("", 0),
                (" ", 0),
                ("a b", 0),
                ("../x", 0),
                ("x" * 300, 0),
                ("\u2603", 0),
                ("__consumer_offsets", 0),
                (t.request, 0),
                (t.dead_letter, 0),
                (t.error, 0),
                (t.routing_decisions, 0),
                (t.response, -1),
                (t.response, self.reply_partitions),
                (t.response, 2**31 - 1),
                (t.response, 2**63 - 1),
                (t.response, -(2**63)),
            )
        )
        doc, _ = self._plus_one(rng, index)
        doc["reply_to"] = {"topic": topic, "partition": partition}
        return self._request_case(
            index, f"reply to {_short(topic, 60)}[{partition}]", doc, Expect.DEAD_LETTER
        )

    def huge(self, rng: random.Random, index: int) -> Case:
        kind = rng.choice(("sql", "param", "id", "garbage", "header", "params", "batch", "json"))
        size = rng.randint(300_000, 850_000)
        if kind == "garbage":
            return self._garbage(index, f"{size} random bytes", rng.randbytes(size))
        doc, answer = self._plus_one(rng, index)
        expect = Expect.ERROR
        if kind == "sql":
            doc["sql"] = "SELECT 1 /*" + "x" * size + "*/"
        elif kind == "param":
            doc["sql"], doc["params"] = "SELECT length($1::text)", ["y" * size]
            expect, answer = Expect.RESULT, Answer(rows=([[size]],))
        elif kind == "id":
            # Echoed in the reply's body and headers: the reply may not fit.
            doc["id"] = self.cid(index, "i" * (size // 2))
            expect = Expect.ANY
        elif kind == "header":
            case = self._garbage(index, f"a {size}-byte header", rng.randbytes(10))
            case.headers = [("fuzz-junk", b"h" * size)]
            return case
        elif kind == "params":
            doc["params"] = [1] * 70_000
        elif kind == "batch":
            doc["many"], doc["params"] = True, [[1]] * 10_001
        else:
            doc["sql"] = "SELECT $1::jsonb IS NOT NULL"
            doc["params"] = [{"$json": {f"k{i}": "v" * 90 for i in range(size // 100)}}]
            expect, answer = Expect.ANY, Answer(rows=([[True]],))
        return self._request_case(
            index,
            f"a huge request ({kind}, about {size} bytes)",
            doc,
            expect,
            answer if expect.may_succeed else None,
        )


#: Small requests that are expensive to handle, sent once per SLOW_EVERY each.
_DOS: list[tuple[str, str, list[Any]]] = [
    # asyncpg turns the Decimal into a Python int to range-check it: a
    # million-digit integer, built in quadratic time.
    ("decimal-exponent-for-int", "SELECT $1::int + 1", [{"$dec": "1e999999"}]),
]

#: Family → weight, for the records that are drawn at random.
FAMILIES: dict[str, int] = {
    "good_select": 6,
    "good_echo": 3,
    "good_insert": 4,
    "good_whoami": 2,
    "random_bytes": 6,
    "truncated": 7,
    "bitflip": 3,
    "json_values": 3,
    "wrong_type": 10,
    "missing_field": 2,
    "bad_version": 1,
    "deep_json": 2,
    "tombstone": 1,
    "encoding": 2,
    "header_junk": 4,
    "dup_keys": 1,
    "hostile": 14,
    "hostile_nul": 1,
    "sql_shape": 1,
    "bad_params": 5,
    "bad_tags": 4,
    "edge_fields": 6,
    "bad_reply_to": 2,
}
#: Families placed at fixed indexes rather than drawn.
SCHEDULED = ("huge", "hostile_slow", "expensive")

_MAKERS: dict[str, Callable[[Generator, random.Random, int], Case]] = {
    name: getattr(Generator, name) for name in (*FAMILIES, *SCHEDULED)
}
