"""Passwords (argon2), signed session cookies and CSRF tokens (itsdangerous)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

from storage.db import Database
from storage.staff import ConsoleTx

log = structlog.get_logger("tawasul.staff")

SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


async def hash_password(password: str) -> str:
    check_strength(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Keys:
    """The signing key: from ``staff.secret_key``, else generated once and kept in the
    database, so that every process of an installation signs alike."""

    SETTING = "secret_key"

    def __init__(self, configured: str, db: Database) -> None:
        self._secret = configured or None
        self._db = db
        self._lock = asyncio.Lock()

    async def secret(self) -> str:
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    self._secret = await self._stored()
        return self._secret

    async def _stored(self) -> str:
        async with self._db.session() as session:
            tx = ConsoleTx(session)
            value = await tx.setting(self.SETTING)
            if value is None:
                value = secrets.token_urlsafe(48)
                await tx.set_setting(self.SETTING, value)
                log.warning("staff.secret_key_generated", stored_in="staff_settings")
        return value

    async def session_cookie(self, token: str) -> str:
        return URLSafeTimedSerializer(await self.secret(), salt="tawasul.staff.session").dumps(
            token
        )

    async def session_token(self, cookie: str) -> str | None:
        serializer = URLSafeTimedSerializer(await self.secret(), salt="tawasul.staff.session")
        try:
            value = serializer.loads(cookie, max_age=int(SESSION_LIFETIME.total_seconds()))
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    async def csrf(self, anchor: str) -> str:
        """A token bound to the session (or, before login, to a cookie of its own)."""
        signer = Signer(await self.secret(), salt="tawasul.staff.csrf")
        return signer.get_signature(anchor).decode()

    async def csrf_ok(self, anchor: str | None, given: str | None) -> bool:
        if not anchor or not given:
            return False
        return secrets.compare_digest(await self.csrf(anchor), given)
