"""The subject of an email thread, kept for the "Re:" of the answers in it.

A subject is what the beneficiary typed ("Request - Ahmed - ID 1012345672 - 0551234567"),
so it is personal data like the message it came with: it is kept encrypted with the data
keys (``save_subject``), under a name derived from the thread id by a hash, and it goes when
the thread's messages go (anonymisation, retention: ``forget_subjects``). The thread id
itself is in the payload of the messages of the thread (encrypted), which is how a subject
is tied to the beneficiary who wrote it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import CryptoError, keyring_for
from storage.models import ChannelCursor
from storage.repository import Tx

SUBJECT_PREFIX = "email:subject:"
MAX_SUBJECT = 500


def subject_key(thread_id: str) -> str:
    """The channel cursor a thread's latest subject is kept under."""
    return SUBJECT_PREFIX + hashlib.sha256(thread_id.encode()).hexdigest()[:40]


def thread_ids(payloads: Iterable[dict[str, Any] | None]) -> set[str]:
    """The email threads that messages (by their payloads) belong to."""
    found = {(p or {}).get("thread_id") for p in payloads}
    return {t for t in found if isinstance(t, str) and t}


async def save_subject(session: AsyncSession, thread_id: str, subject: str) -> None:
    """Keep the thread's latest subject, encrypted with the current data key."""
    keyring = keyring_for(session.get_bind().dialect)
    sealed = keyring.encrypt(subject[:MAX_SUBJECT])
    await Tx(session).set_cursor(subject_key(thread_id), {"subject": sealed})


async def load_subject(session: AsyncSession, thread_id: str) -> str | None:
    """The thread's latest subject; None when none is kept or it can no longer be read (a
    retired key): the answer then goes out under the default subject."""
    stored = (await Tx(session).cursor(subject_key(thread_id))).get("subject")
    if not isinstance(stored, str) or not stored:
        return None
    try:
        # A subject written before it was encrypted reads as it is.
        return keyring_for(session.get_bind().dialect).decrypt(stored)
    except CryptoError:
        return None


async def forget_subjects(session: AsyncSession, threads: Iterable[str]) -> int:
    """Delete the subjects kept for these threads; how many there were."""
    names = sorted({subject_key(t) for t in threads})
    if not names:
        return 0
    result = await session.execute(delete(ChannelCursor).where(ChannelCursor.name.in_(names)))
    return int(getattr(result, "rowcount", 0) or 0)
