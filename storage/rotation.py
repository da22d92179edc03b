"""Moving every encrypted value to the current data key, and every keyed hash to the current
lookup key (``tawasul keys rotate``).

Rows are read and rewritten in small transactions, in id order, table by table. A row is
rewritten only when one of its values is clear (written before encryption), under an older
key, or its hash does not match; a second run rewrites nothing. Each rewrite is conditional
on the values read, so a row the server changed in between is left to the server, which
writes with the current key anyway. Values are read and written as stored (no column type
processing), so nothing is encrypted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Table, Text, and_, func, select, text, type_coerce, update
from sqlalchemy.exc import IntegrityError

import storage.followup  # (registers the follow-up tables)
import storage.staff_models  # noqa: F401  (registers the console's tables)
from storage.crypto import BlindIndex, EncryptedType, Keyring, is_encrypted
from storage.db import Database
from storage.models import Base


@dataclass
class TableRotation:
    table: str
    rows: int = 0
    checked: int = 0
    rewritten: int = 0
    conflicts: list[int] = field(default_factory=list)  # ids whose hash another row holds


Progress = Callable[[TableRotation], None]


def encrypted_tables() -> list[Table]:
    return [
        table
        for table in Base.metadata.sorted_tables
        if any(isinstance(c.type, EncryptedType | BlindIndex) for c in table.columns)
    ]


async def rotate(
    database: Database,
    keyring: Keyring,
    *,
    batch_size: int = 200,
    decrypt: bool = False,
    progress: Progress | None = None,
) -> list[TableRotation]:
    """Re-encrypt (or, with ``decrypt``, store clear) and re-hash every row."""
    reports = []
    for table in encrypted_tables():
        report = TableRotation(table.name)
        async with database.session(write=False) as session:
            report.rows = int(await session.scalar(select(func.count()).select_from(table)) or 0)
        last = 0
        while True:
            async with database.session(write=False) as session:
                rows = list(
                    (
                        await session.execute(
                            select(table.c.id, *_raw_columns(table))
                            .where(table.c.id > last)
                            .order_by(table.c.id)
                            .limit(batch_size)
                        )
                    ).mappings()
                )
            if not rows:
                break
            last = rows[-1]["id"]
            changes = [
                (row, change)
                for row in rows
                if (change := _change(table, row, keyring, decrypt=decrypt))
            ]
            report.checked += len(rows)
            if changes:
                try:
                    async with database.session() as session:
                        await _zero_freed_space(database, session)
                        for row, change in changes:
                            report.rewritten += await _rewrite(session, table, row, change)
                except IntegrityError:
                    # One row's hash is held by another (two identities of one address, one
                    # written before encryption): rewrite the others one by one.
                    for row, change in changes:
                        try:
                            async with database.session() as session:
                                await _zero_freed_space(database, session)
                                report.rewritten += await _rewrite(session, table, row, change)
                        except IntegrityError:
                            report.conflicts.append(int(row["id"]))
            if progress is not None:
                progress(report)
        reports.append(report)
    if database.is_sqlite:
        # Old page versions (clear values, older ciphertexts) leave the write-ahead log.
        async with database.engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return reports


async def _zero_freed_space(database: Database, session: Any) -> None:
    """SQLite otherwise leaves a rewritten value's old bytes in the page's free space."""
    if database.is_sqlite:
        await session.execute(text("PRAGMA secure_delete = ON"))


def _raw_columns(table: Table) -> list[Any]:
    return [
        type_coerce(column, Text()).label(column.name)
        for column in table.columns
        if isinstance(column.type, EncryptedType | BlindIndex)
    ]


def _change(table: Table, row: Any, keyring: Keyring, *, decrypt: bool) -> dict[str, Any]:
    change: dict[str, Any] = {}
    for column in table.columns:
        stored = row.get(column.name)
        if isinstance(column.type, EncryptedType) and stored:
            if decrypt:
                if is_encrypted(stored):
                    change[column.name] = keyring.decrypt(stored)
            elif not keyring.is_current(stored):
                change[column.name] = keyring.encrypt(keyring.decrypt(stored))
        elif isinstance(column.type, BlindIndex):
            clear = row.get(column.name.removesuffix("_hash"))
            wanted = None if clear is None else keyring.blind(keyring.decrypt(clear))
            if stored != wanted:
                change[column.name] = wanted
    return change


async def _rewrite(session: Any, table: Table, row: Any, change: dict[str, Any]) -> int:
    as_read = [
        type_coerce(table.c[name], Text()) == row[name]
        for name in change
        if isinstance(table.c[name].type, EncryptedType)
    ]
    values = {
        name: type_coerce(
            value, Text() if isinstance(table.c[name].type, EncryptedType) else String()
        )
        for name, value in change.items()
    }
    result = await session.execute(
        update(table).where(and_(table.c.id == row["id"], *as_read)).values(values)
    )
    return int(result.rowcount or 0)
