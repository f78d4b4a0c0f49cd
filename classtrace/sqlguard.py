"""The one guard on SQL from analysts and viewers: a single read statement that touches nothing but tables.

chDB runs inside our process with our user's rights and cannot enforce ClickHouse users or grants:
``SELECT file('/etc/passwd')``, ``INTO OUTFILE`` or ``url()`` would read and write the host. So
SQL that does not come from the stack's own roles is parsed by the engine itself (never by a
regex of ours) and refused unless every part of it is known to be safe (deny by default):

    check(sql, run, params)   # raises QueryRefused naming what was refused

``run(sql, params)`` executes one guard query on the engine, binding ``params`` exactly as the
checked query's own values are bound, and returns the result as raw TSV;
the guard only ever runs ``formatQuerySingleLine`` (parses, executes nothing) and ``EXPLAIN AST``
of the re-formatted single statement. Rules:

- exactly one statement, of an allowed kind (SELECT / WITH … SELECT, SHOW tables, columns,
  functions, engines, CREATE; DESCRIBE; EXISTS; EXPLAIN of those);
- no table function at all (``file``, ``url``, ``s3``, ``remote``, ``executable``, ``input``, even
  ``numbers``): every name the engine lists in ``system.table_functions`` is refused anywhere;
- no scalar function that reaches the host, the network or a dictionary (:data:`DENIED_FUNCTIONS`);
- no ``INTO OUTFILE``, no ``SETTINGS`` clause (settings travel as vetted request settings, see
  :func:`check_setting`);
- of the ``system`` database only the catalogue tables in :data:`SYSTEM_TABLES`.

The caller also runs what passes with ``readonly=1``: a second fence if a rule here has a hole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from classtrace.errors import ClasstraceError

__all__ = [
    "DENIED_FUNCTIONS",
    "READER_USER",
    "SYSTEM_TABLES",
    "QueryRefused",
    "Run",
    "check",
    "check_setting",
]

READER_USER = "reader"
"""The user name that asks the stack's SQL endpoint for a guarded, read-only session with the
owner's secret (what ``classtrace query`` does); the endpoint's reader secret always gets one."""

Run = Callable[[str, Mapping[str, str]], str]
"""Runs one guard query with bound parameters on the engine; returns the result as raw TSV."""


class QueryRefused(ClasstraceError):
    """SQL the guard does not let through; the message names what was refused and why."""


# Statement kinds as EXPLAIN AST names them (the first line of its output).
_STATEMENTS = frozenset(
    {
        "SelectWithUnionQuery", "ShowTables", "ShowColumns", "ShowFunctions", "ShowEngineQuery",
        "ShowCreateTableQuery", "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery",
        "ExistsViewQuery", "ExistsDictionaryQuery",
    }
)  # fmt: skip
_EXPLAIN_KINDS = frozenset(
    {"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE", "EXPLAIN PLAN", "EXPLAIN PIPELINE",
     "EXPLAIN ESTIMATE"}
)  # fmt: skip

DENIED_FUNCTIONS = (
    "file", "dict", "joinget", "catboost", "naivebayes", "filesystem", "addressto", "demangle",
    "showcertificate", "getserversetting", "getmergetreesetting", "getmacro", "getclienthttpheader",
    "sleep", "modelevaluate", "evalmlmethod", "fuzzquery",
)  # fmt: skip
"""Scalar functions refused, by lower-case name prefix: they read host files (``file``, models,
certificates), reach dictionaries with external sources, probe the host or stall the engine."""

SYSTEM_TABLES = frozenset(
    {
        "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns",
        "settings", "functions", "table_functions", "formats", "data_type_families", "table_engines",
        "time_zones", "collations", "aggregate_function_combinators", "keywords", "parts",
        "parts_columns", "data_skipping_indices", "build_options", "contributors",
    }
)  # fmt: skip
"""``system`` tables a guarded query may read: the catalogue clients and BI tools browse. The
rest (``processes``, ``query_log``, ``users``, ``disks`` …) shows other sessions or the host."""

# Table functions the engine may not list (older servers, or when the list cannot be read).
_KNOWN_TABLE_FUNCTIONS = frozenset(
    {
        "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "cosn", "oss", "hdfs",
        "hdfscluster", "azureblobstorage", "remote", "remotesecure", "cluster", "clusterallreplicas",
        "executable", "input", "mysql", "postgresql", "sqlite", "jdbc", "odbc", "mongodb", "redis",
        "dictionary", "merge", "view", "viewifpermitted", "iceberg", "deltalake", "hudi", "format",
        "numbers", "values", "generaterandom", "null", "loop", "fuzzjson", "fuzzquery",
    }
)  # fmt: skip
_table_functions: dict[str, frozenset[str]] = {}  # "names" → the engine's list, read once

# Settings a guarded request may carry: output shaping and lower result limits, nothing that
# reads files (format_schema, format_template_*), writes them (output_format_schema) or lifts
# readonly, allow_* or resource limits.
_SAFE_SETTINGS = frozenset(
    {
        "max_result_rows", "max_result_bytes", "result_overflow_mode", "date_time_output_format",
        "extremes", "join_use_nulls", "output_format_json_quote_64bit_integers",
        "output_format_json_quote_denormals", "output_format_json_named_tuples_as_objects",
        "output_format_decimal_trailing_zeros", "output_format_csv_crlf_end_of_line",
        "output_format_tsv_crlf_end_of_line", "output_format_write_statistics",
        "output_format_arrow_string_as_string", "output_format_native_encode_types_in_binary_format",
        "output_format_json_array_of_rows", "output_format_pretty_max_rows",
        "output_format_pretty_color", "output_format_pretty_grid_charset", "session_timezone",
    }
)  # fmt: skip

_IDENTIFIER_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_IDENTIFIER_PARAM = re.compile(r"\{\s*(\w+)\s*:\s*Identifier\s*\}", re.IGNORECASE)
_NODE = re.compile(r"( *)(\S+)(?: (.*?))?(?: \(children \d+\))?")


@dataclass(frozen=True)
class _Node:
    depth: int
    kind: str  # "Function", "TableIdentifier", "Literal", "SelectWithUnionQuery" …
    name: str  # the rest of the line: a function's or table's name, a literal, an EXPLAIN kind


def check_setting(name: str) -> None:
    """Refuse a request setting that is not known to be harmless (allowlist)."""
    if name not in _SAFE_SETTINGS:
        raise QueryRefused(
            f"setting {name!r} is refused: analyst queries may only shape their output "
            f"({', '.join(sorted(_SAFE_SETTINGS)[:4])} …)"
        )


def check(sql: str, run: Run, params: Mapping[str, str] | None = None, database: str = "") -> None:
    """Refuse ``sql`` unless it is one safe read statement; ``params`` are its bound values.

    ``database`` is the default database unqualified table names resolve in. Syntax errors come
    from ``run`` as the engine's own errors.
    """
    binds = dict(params or {})
    try:
        # a literal, not a parameter: ``run`` then binds only the caller's own values
        literal = "'" + sql.replace("\\", "\\\\").replace("'", "\\'") + "'"
        canonical = run(f"SELECT formatQuerySingleLine({literal})", {}).rstrip("\n")
    except Exception as exc:
        if "Multi-statements are not allowed" in str(exc):
            raise QueryRefused("more than one statement: send one statement per query") from exc
        raise
    _check_names(canonical, binds)
    nodes = _parse(run(f"EXPLAIN AST {canonical}", binds))
    _check_statement(nodes)
    names = _table_function_names(run)
    parents: list[_Node] = []
    for node in nodes:
        del parents[node.depth :]
        _check_node(node, parents[-1] if parents else None, names, database)
        parents.append(node)


def _check_names(canonical: str, binds: Mapping[str, str]) -> None:
    # EXPLAIN AST prints names raw: a name with a line break in it could print fake lines.
    for quoted in re.findall(r"`((?:[^`\\]|\\.)*)`", canonical):
        if "\\" in quoted:
            raise QueryRefused(f"quoted name with an escape sequence: `{quoted}`")
    for name in _IDENTIFIER_PARAM.findall(canonical):
        value = binds.get(name)
        if value is not None and not _IDENTIFIER_VALUE.fullmatch(value):
            raise QueryRefused(f"parameter {name!r} (Identifier) must be a plain [db.]name, got {value!r}")


def _parse(text: str) -> list[_Node]:
    nodes = []
    for line in text.splitlines():
        match = _NODE.fullmatch(line.rstrip())
        if match is None:
            raise QueryRefused(f"cannot read the engine's parse of this query at {line!r}")
        nodes.append(_Node(len(match.group(1)), match.group(2), (match.group(3) or "").strip()))
    if not nodes:
        raise QueryRefused("empty query")
    return nodes


def _check_statement(nodes: list[_Node]) -> None:
    root = nodes[0]
    if root.kind == "Explain":
        if root.name not in _EXPLAIN_KINDS:
            raise QueryRefused(f"{root.name} is refused: only {', '.join(sorted(_EXPLAIN_KINDS))}")
        inner = next((n for n in nodes[1:] if n.depth == 1 and n.kind != "Set"), None)
        if inner is None or inner.kind not in _STATEMENTS:
            raise QueryRefused("EXPLAIN is allowed of a read statement only")
    elif root.kind not in _STATEMENTS:
        raise QueryRefused(
            f"{_statement_name(root.kind)} statements are refused: only SELECT, WITH … SELECT, "
            "SHOW, DESCRIBE, EXISTS and EXPLAIN may run here"
        )


def _statement_name(kind: str) -> str:
    """``ShowProcesslistQuery`` → ``SHOW PROCESSLIST``; ``SYSTEM`` (from "SYSTEM query") stays."""
    bare = kind.removesuffix("Query")
    return bare if bare.isupper() else re.sub(r"(?<!^)(?=[A-Z])", " ", bare).upper()


def _check_node(node: _Node, parent: _Node | None, table_functions: frozenset[str], database: str) -> None:
    kind, name = node.kind, node.name.split(" ")[0]
    if kind == "Set":
        raise QueryRefused("a SETTINGS clause is refused: queries here run read-only, as they are")
    if kind == "Literal" and parent is not None and parent.kind in _STATEMENTS | {"Explain"}:
        raise QueryRefused("INTO OUTFILE is refused: results come back to the client, never into a file")
    if kind == "Function":
        _check_function(name, parent, table_functions)
    if kind == "TableIdentifier":
        _check_table(name, database)


def _check_function(name: str, parent: _Node | None, table_functions: frozenset[str]) -> None:
    lower = name.lower()
    if parent is not None and parent.kind == "TableExpression":
        raise QueryRefused(f"table function {name}() is refused: read the classtrace tables")
    if lower in table_functions:
        raise QueryRefused(f"function {name}() is refused: it reads outside the database")
    if lower.startswith(DENIED_FUNCTIONS):
        raise QueryRefused(f"function {name}() is refused: it reaches the host, the network or a dictionary")


def _check_table(name: str, database: str) -> None:
    db, _, table = name.rpartition(".")
    db = (db or database).strip("`")
    if db.lower() == "system" and table.strip("`") not in SYSTEM_TABLES:
        raise QueryRefused(
            f"system.{table} is refused: of the system database only catalogue tables such as "
            "system.tables and system.columns may be read (classtrace.sqlguard.SYSTEM_TABLES)"
        )


def _table_function_names(run: Run) -> frozenset[str]:
    """Every table function the engine knows (lower-case); read from the first engine asked."""
    if "names" not in _table_functions:
        try:
            listed = {n.lower() for n in run("SELECT name FROM system.table_functions", {}).split()}
        except Exception:  # an engine without the list: the static names still apply
            return _KNOWN_TABLE_FUNCTIONS - {"format"}
        # format() is also the string function format(pattern, args…); as a table it is refused
        # by position (a function in a FROM clause) like every other table function.
        _table_functions["names"] = frozenset((_KNOWN_TABLE_FUNCTIONS | listed) - {"format"})
    return _table_functions["names"]
