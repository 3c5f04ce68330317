"""Statement analysis with PostgreSQL's own grammar (pglast, the only pglast importer).

:func:`analyze` parses a SQL string once and says how many statements it
holds, which operation it is and whether it writes. Results are cached by
SQL text, so a repeated statement costs a dict lookup.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError

from querybus.errors import RequestRejectedError
from querybus.protocol.messages import OperationType

__all__ = ["StatementInfo", "analyze"]

_DML: dict[type, OperationType] = {
    ast.SelectStmt: OperationType.SELECT,
    ast.InsertStmt: OperationType.INSERT,
    ast.UpdateStmt: OperationType.UPDATE,
    ast.DeleteStmt: OperationType.DELETE,
}

_DDL = tuple(
    getattr(ast, name)
    for name in (
        "CreateStmt", "CreateTableAsStmt", "AlterTableStmt", "DropStmt", "IndexStmt",
        "ViewStmt", "CreateSeqStmt", "AlterSeqStmt", "CreateSchemaStmt", "RenameStmt",
        "CreateFunctionStmt", "CreateEnumStmt", "CompositeTypeStmt", "TruncateStmt",
        "CommentStmt", "GrantStmt", "CreateExtensionStmt", "CreateTrigStmt",
        "AlterEnumStmt", "CreateDomainStmt", "AlterDomainStmt",
    )
    if hasattr(ast, name)
)


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """What one SQL string is.

    Attributes:
        statement_count: statements in the string (an adapter runs only 1).
        operation: the top-level statement's operation.
        writes: whether it writes (DML other than a plain SELECT, a CTE that
            writes, SELECT INTO, DDL, …).
    """

    statement_count: int
    operation: OperationType
    writes: bool


def _contains_write(node: ast.Node) -> bool:
    for sub in _walk(node):
        if isinstance(sub, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
            return True
        if hasattr(ast, "MergeStmt") and isinstance(sub, ast.MergeStmt):
            return True
    return False


def _walk(node: object) -> list[ast.Node]:
    out: list[ast.Node] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.Node):
            out.append(cur)
            for slot in cur.__slots__:
                stack.append(getattr(cur, slot, None))
        elif isinstance(cur, (tuple, list)):
            stack.extend(cur)
    return out


@functools.lru_cache(maxsize=4096)
def analyze(sql: str) -> StatementInfo:
    """Parse ``sql`` and describe it.

    Raises:
        RequestRejectedError: the SQL does not parse or is empty.
    """
    try:
        stmts = parse_sql(sql)
    except ParseError as exc:
        raise RequestRejectedError(f"SQL does not parse: {exc}") from exc
    if not stmts:
        raise RequestRejectedError("no SQL statement given")
    top = stmts[0].stmt
    op = _DML.get(type(top))
    if op is None:
        op = OperationType.DDL if isinstance(top, _DDL) else OperationType.OTHER
    if op is OperationType.SELECT:
        writes = bool(getattr(top, "intoClause", None)) or _contains_write(top)
    else:
        writes = op is not OperationType.OTHER or _contains_write(top)
    return StatementInfo(statement_count=len(stmts), operation=op, writes=writes)
