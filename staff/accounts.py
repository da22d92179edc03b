"""Staff accounts: the one set of rules behind `tawasul staff` and the console's Staff page.

Every change is written to the audit log with who made it (``cli`` or ``staff:EMAIL``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from staff.permissions import Role
from staff.security import WeakPassword, hash_password
from storage.db import Database
from storage.staff import ConsoleTx, StaffExists
from storage.staff_models import StaffUser

ROLES = tuple(role.value for role in Role)
MAX_NAME = 200
MAX_EMAIL = 320


class AccountError(ValueError):
    """A change refused; ``code`` names it for the console, ``str()`` explains it in English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Added:
    email: str
    role: str
    # The password made up for the account, to be shown once; None when one was given.
    generated_password: str | None


def check_email(email: str) -> str:
    """The address as stored (trimmed, lower case), or AccountError."""
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(value) > MAX_EMAIL
        or any(c.isspace() for c in value)
    ):
        raise AccountError("email", "give an email address")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError("role", f"the role is one of {', '.join(ROLES)}")
    return role


def generate_password() -> str:
    """Sixteen random characters, well over the minimum length."""
    return secrets.token_urlsafe(12)


async def _hashed(password: str) -> str:
    try:
        return await hash_password(password)
    except WeakPassword as exc:
        raise AccountError("password", str(exc)) from None


def _self(actor: str, email: str) -> bool:
    return actor == f"staff:{email}"


async def add_account(
    db: Database,
    email: str,
    role: str,
    *,
    actor: str,
    name: str = "",
    password: str | None = None,
) -> Added:
    """Create an account; without a password one is generated and returned once."""
    email = check_email(email)
    check_role(role)
    name = name.strip()
    if len(name) > MAX_NAME:
        raise AccountError("name", f"a name has at most {MAX_NAME} characters")
    generated = None
    if password is None:
        generated = password = generate_password()
    password_hash = await _hashed(password)
    try:
        async with db.session() as session:
            await ConsoleTx(session).add_staff(email, role, password_hash, name=name, actor=actor)
    except StaffExists:
        raise AccountError("exists", f"{email} already has an account") from None
    return Added(email, role, generated)


async def _existing(tx: ConsoleTx, email: str) -> StaffUser:
    user = await tx.staff_by_email(email)
    if user is None:
        raise AccountError("unknown", f"no account {email}")
    return user


async def _guard_last_admin(tx: ConsoleTx, email: str) -> None:
    """There is always at least one active administrator left to manage the others."""
    if await tx.active_admins() == [email]:
        raise AccountError("last_admin", "this is the only active administrator")


async def change_role(db: Database, email: str, role: str, *, actor: str) -> None:
    email = check_email(email)
    check_role(role)
    if _self(actor, email):
        raise AccountError("self", "you cannot change your own role")
    async with db.session() as session:
        tx = ConsoleTx(session)
        user = await _existing(tx, email)
        if user.role == "admin" and role != "admin" and user.active:
            await _guard_last_admin(tx, email)
        await tx.set_staff_role(email, role, actor=actor)


async def set_active(db: Database, email: str, active: bool, *, actor: str) -> list[int]:
    """Enable or disable an account; a disabled account's sessions end at once, and the
    conversations it held go back to the queue (their ids are returned)."""
    email = check_email(email)
    if _self(actor, email):
        raise AccountError("self", "you cannot disable your own account")
    async with db.session() as session:
        tx = ConsoleTx(session)
        user = await _existing(tx, email)
        if not active and user.role == "admin":
            await _guard_last_admin(tx, email)
        await tx.set_staff_active(email, active, actor=actor)
        return [] if active else await tx.requeue_held_by(user.email, actor=actor)


async def change_password(db: Database, email: str, password: str, *, actor: str) -> None:
    """A new password; the account's open sessions end."""
    email = check_email(email)
    password_hash = await _hashed(password)
    async with db.session() as session:
        if not await ConsoleTx(session).set_password(email, password_hash, actor=actor):
            raise AccountError("unknown", f"no account {email}")
