"""The database, its backups and the documents beneficiaries send are readable by the
server's own user only, whatever the umask: another account on the machine could otherwise
read national IDs, ID scans and the key that signs staff sessions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.backup import backup
from storage.db import Database
from storage.files import AttachmentStore
from storage.migrate import head_revision, upgrade
from tests.security.test_attachments import PDF

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005ff02fea7d4a1f40000000049454e44ae426082"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what most systems give a service
    yield
    os.umask(previous)


async def test_the_database_and_its_backup_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "tawasul.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(db.engine)
        assert mode(path) == 0o600
        assert mode(path.with_name("tawasul.db-wal")) == 0o600
        copy = tmp_path / "backups" / "tawasul.db"
        await backup(path, copy, frozenset({head_revision()}))
        assert mode(copy) == 0o600
    finally:
        await db.dispose()


async def test_a_database_made_readable_before_is_made_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "tawasul.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.engine.connect():
            pass
    finally:
        await db.dispose()
    assert mode(path) == 0o600


async def test_documents_and_photos_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    store = AttachmentStore(tmp_path / "attachments")
    for data, kind in ((PDF, "application/pdf"), (PNG_1PX, "image/png")):
        saved = await store.save_bytes(data, declared_type=kind, filename="x", max_bytes=1 << 20)
        file = store.path(saved.ref)
        assert mode(file) == 0o600
        assert mode(file.parent) == 0o700 and mode(file.parent.parent) == 0o700
