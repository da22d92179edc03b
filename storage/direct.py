"""The message path's statements, run straight on SQLite's connection.

A statement built once still costs about 60 µs of Python each time SQLAlchemy runs it (an
execution context, the result's metadata, four or five hand-offs between its greenlet and
the event loop) where SQLite itself takes a few, and every message runs eight of them. The
statements marked with ``direct()`` are compiled by SQLAlchemy once per database and set of
parameter names, then run on the DBAPI connection of the session's own transaction, with
SQLAlchemy's own type processors on the way in and out (dates, JSON, encrypted columns) and
Python-side column defaults filled in as SQLAlchemy would. What they return behaves as a
``Result`` does for what the repository asks of it (``first``, ``scalar``, ``scalars``,
``rowcount``, iteration), errors are SQLAlchemy's (an ``IntegrityError`` stays one, a value
left out or refused by its column is a ``StatementError``), and what the session holds
unwritten is written first, as the session itself does before a statement.

Everything else goes through SQLAlchemy: every statement on PostgreSQL, any statement not
marked, a statement with a list given as a parameter (``IN :ids``), and all of them while the
engine echoes its SQL. Listeners of ``before_cursor_execute`` still see each statement
(without a cursor; ``after_cursor_execute`` is not called for these). The
compiled form's positional parameters, processors and expanded lists are read from
SQLAlchemy's compiler, partly through its private names; the tests hold that they still
read right.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

S = TypeVar("S")

# The statements marked, by id (kept here, so that an id is never another's).
_DIRECT: dict[int, Any] = {}
# Where the plans of one database's dialect are kept (its processors are its own: the
# encrypted columns read the keyring installed on it).
_PLANS = "tawasul_direct_plans"


def direct(statement: S) -> S:
    """Mark a statement built once to run straight on SQLite (see the module)."""
    if getattr(statement, "_propagate_attrs", {}).get("compile_state_plugin") == "orm":
        # Through the session, an ORM statement flushes and loads objects: not for here.
        raise ValueError("only Core statements (on tables, not mapped classes) run directly")
    _DIRECT[id(statement)] = statement
    return statement


class Rows(list[Any]):
    """What a statement run directly returned, read as its ``Result`` would be."""

    rowcount: int = -1

    def first(self) -> Any:
        return self[0] if self else None

    def scalar(self) -> Any:
        return self[0][0] if self else None

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self)


class _Plan:
    """One statement compiled for one dialect and set of parameter names."""

    __slots__ = ("binds", "compiled", "constants", "defaults", "names", "results", "row", "sql")

    def __init__(self, statement: Any, dialect: Any, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        keyset = set(keys)
        if any(
            bind.required and bind.key not in keyset and name not in keyset
            for bind, name in compiled.bind_names.items()
        ):
            raise _Unplanned  # SQLAlchemy says "a value is required for bind parameter ..."
        self.compiled = compiled
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors = dict(compiled._bind_processors)
        self.constants: dict[str, Any] = {}
        lists = compiled.literal_execute_params | compiled.post_compile_params
        if lists:
            # An IN list is rendered at each execution for the values given then; one
            # written in the statement itself (``status IN ('bot', 'queued', 'staff')``)
            # is the same every time, and is rendered here once.
            names = {compiled.bind_names[bind] for bind in lists}
            if names & keyset or any(bind.callable or bind.value is None for bind in lists):
                raise _Unplanned
            given = compiled.construct_params(dict.fromkeys(keys), _check=False)
            plain = set(given) - names
            expanded = compiled._process_parameters_for_postcompile(given)
            self.sql, self.names = expanded.statement, tuple(expanded.positiontup or ())
            self.constants = {
                name: value for name, value in expanded.parameters.items() if name not in plain
            }
            processors.update(expanded.processors)
        self.binds = tuple(processors.get(name) for name in self.names)
        self.defaults = tuple(
            (column.key, _default_of(default))
            for columns, attribute in (
                (compiled.insert_prefetch, "default"),
                (compiled.update_prefetch, "onupdate"),
            )
            for column in columns
            if (default := getattr(column, attribute)) is not None
        )
        columns = compiled._result_columns
        self.results = tuple(
            column.type._cached_result_processor(dialect, None) for column in columns
        )
        self.row: Any = (
            namedtuple("Row", [column.keyname for column in columns], rename=True)
            if columns
            else None
        )

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self.compiled.construct_params(params, _check=False)
        if self.constants:
            values.update(self.constants)
        for key, default in self.defaults:
            if values.get(key) is None and key not in params:
                values[key] = default()
        return tuple(
            value if process is None else process(value)
            for process, value in zip(
                self.binds, (values[name] for name in self.names), strict=True
            )
        )

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[Any]:
        if self.row is None:
            return []
        make, processors = self.row._make, self.results
        return [
            make(
                value if process is None else process(value)
                for process, value in zip(processors, raw, strict=True)
            )
            for raw in fetched
        ]


class _Unplanned(Exception):
    """This statement cannot run directly: SQLAlchemy runs it."""


def _default_of(default: Any) -> Callable[[], Any]:
    if default.is_scalar:
        value = default.arg
        return lambda: value
    if default.is_callable:
        function = default.arg
        return lambda: function(None)  # wrapped by SQLAlchemy to take (and ignore) a context
    raise _Unplanned  # a SQL expression or a sequence: the execution context's job


def _plan(statement: Any, dialect: Any, keys: tuple[str, ...]) -> _Plan | None:
    plans: dict[tuple[int, tuple[str, ...]], _Plan | None] = dialect.__dict__.setdefault(_PLANS, {})
    key = (id(statement), keys)
    if key not in plans:
        try:
            plans[key] = _Plan(statement, dialect, keys)
        except _Unplanned:
            plans[key] = None
    return plans[key]


def _run(
    connection: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], int]:
    """In one hand-off to the driver: every row's statement, and what each returned."""
    fetched: list[tuple[Any, ...]] = []
    count = 0
    for values in rows:
        cursor = connection.execute(sql, values)
        fetched.extend(cursor.fetchall())
        count += max(cursor.rowcount, 0)
        cursor.close()
    return fetched, count


# Where a session keeps its transaction's connection, once asked for.
_CONNECTION = "tawasul_direct_connection"


async def _connection(session: AsyncSession) -> Connection:
    """The connection of the session's transaction (begun if need be). Asking the session
    for it costs about 25 µs each time; it is the same for the whole transaction."""
    kept = session.info.get(_CONNECTION)
    transaction = session.sync_session.get_transaction()
    if kept is not None and transaction is not None and kept[0] is transaction:
        connection: Connection = kept[1]
        return connection
    found = (await session.connection()).sync_connection
    if found is None:  # not for a connection in use
        raise exc.InvalidRequestError("the session's connection is closed")
    connection = found
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), connection)
    return connection


async def execute(
    session: AsyncSession,
    statement: Any,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> Any:
    """``session.execute(statement, params)``, straight on SQLite when marked and possible."""
    bind = session.bind
    if id(statement) not in _DIRECT or bind is None or bind.dialect.name != "sqlite":
        return await session.execute(statement, params)
    if session.sync_session.autoflush and not session.sync_session._is_clean():
        # As the session does before a Core statement: what it holds unwritten is written
        # first, so that the statement reads it.
        await session.flush()
    sync = await _connection(session)
    dialect = sync.dialect
    if sync._echo:
        return await session.execute(statement, params)
    many = not isinstance(params, Mapping)
    batch: Sequence[Mapping[str, Any]] = params if many else [params]  # type: ignore[list-item,assignment]
    if not batch:
        return await session.execute(statement, params)
    keys = tuple(batch[0])
    plan = _plan(statement, dialect, keys)
    if plan is None or (many and any(tuple(row) != keys for row in batch)):
        return await session.execute(statement, params)
    try:
        values = [plan.parameters(row) for row in batch]
    except Exception as error:  # a column's processor refused a value: as SQLAlchemy says it
        raise exc.StatementError(
            f"({type(error).__module__}.{type(error).__name__}) {error}", plan.sql, params, error
        ) from error
    if sync._has_events or sync.engine._has_events:
        sync.dispatch.before_cursor_execute(
            sync, None, plan.sql, values if many else values[0], None, many
        )
    driver: Any = sync.connection.driver_connection
    try:
        fetched, count = await driver._execute(_run, driver._connection, plan.sql, values)
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(
            plan.sql, values, error, sqlite3.Error, dialect=dialect
        ) from error
    result = Rows(plan.rows(fetched))
    result.rowcount = count
    return result
