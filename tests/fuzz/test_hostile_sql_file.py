"""The hostile SQL list is well-formed, and covers what issue 7 asks for. No services needed."""

from __future__ import annotations

import pytest
from tests.fuzz.generator import FAMILIES, SCHEDULED, Expect, Generator
from tests.fuzz.hostile import HostileFileError, load_hostile_sql, parse_hostile_sql

from querybus.config import TopicNames
from querybus.protocol import decode_request


def test_the_hostile_sql_file_parses_and_covers_each_kind_of_attack() -> None:
    entries = load_hostile_sql()
    text = "\n".join(e.sql.upper() for e in entries)
    for needle in (
        "SET ROLE",
        "RESET ROLE",
        "SESSION AUTHORIZATION",
        "SET_CONFIG('ROLE'",
        "SET_CONFIG('SEARCH_PATH'",
        "SET_CONFIG('STATEMENT_TIMEOUT'",
        "DO $$",
        "DO $X$",
        "TO PROGRAM",
        "FROM PROGRAM",
        "LOAD ",
        "CREATE FUNCTION",
        "CREATE PROCEDURE",
        "CREATE LANGUAGE",
        "CREATE EXTENSION",
        "ALTER SYSTEM",
        "PREPARE ",
        "EXECUTE ",
        "DEALLOCATE",
        "LISTEN",
        "WITH HOLD",
        "CREATE TEMP TABLE",
        "INTO TEMP",
        "PG_ADVISORY_LOCK",
        "/* ; */",
        "$$;$$",
        "U&",
        "PG_SLEEP",
        "PG_TERMINATE_BACKEND",
        "PG_READ_FILE",
        "LO_IMPORT",
        "DBLINK",
    ):
        assert needle in text, f"no hostile entry contains {needle!r}"
    assert any(e.sql == "" for e in entries), "no empty statement"
    assert sum(e.refuse for e in entries) > 100
    assert all(e.slow is False or e.refuse for e in entries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1\n-- ---- refuse a\nSELECT 1", "before the first entry"),
        ("-- ---- maybe a\nSELECT 1", "expectation"),
        ("-- ---- refuse A_B\nSELECT 1", "lower-case"),
        ("-- ---- refuse a fast\nSELECT 1", "unknown flag"),
        ("-- ---- refuse a params={}\nSELECT 1", "JSON list"),
        ("-- ---- refuse a\nSELECT 1\n-- ---- refuse a\nSELECT 2", "duplicate"),
    ],
)
def test_malformed_hostile_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(HostileFileError, match=message):
        parse_hostile_sql(text)


def test_entries_keep_their_lines_and_lose_only_the_final_newline() -> None:
    [first, empty, last] = parse_hostile_sql(
        '# about\n-- ---- refuse a params=[1,"x"] slow\nSELECT 1;\n\nSELECT 2\n'
        "-- ---- contain b outage-ok\n-- ---- refuse c\nSELECT 3\n"
    )
    assert (first.sql, first.params, first.slow, first.refuse) == (
        "SELECT 1;\n\nSELECT 2",
        (1, "x"),
        True,
        True,
    )
    assert (empty.sql, empty.refuse, empty.outage_ok) == ("", False, True)
    assert last.sql == "SELECT 3"
    assert last.render(7, "t") == "SELECT 3"


def test_the_generator_is_reproducible_and_labels_every_record() -> None:
    def make(seed: int) -> Generator:
        return Generator(
            seed,
            topics=TopicNames(prefix="t-x."),
            reply_partitions=4,
            table="t_table",
            baseline=("u", "u", "public"),
            hostile=load_hostile_sql(),
        )

    a, b = make(1), make(1)
    seen = set()
    for i in range(3_000):
        x, y = a.case(i), b.case(i)
        assert (x.family, x.key, x.headers[0]) == (y.family, y.key, y.headers[0])
        assert x.headers[0] == ("fuzz-id", str(i).encode())
        seen.add(x.family)
        if x.expect is Expect.RESULT:
            request = decode_request(x.value or b"")
            assert request.id.startswith(f"fz{i}:")
    assert seen == set(FAMILIES) | set(SCHEDULED)
