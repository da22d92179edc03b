"""Personal data encrypted at rest, and keyed hashes to find it again.

Columns holding what beneficiaries type or identify themselves with use ``EncryptedText`` or
``EncryptedJSON``: values are encrypted with AES-256-GCM when bound and decrypted when read,
stored as ``enc1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``. The key id names which of
the configured data keys encrypted a value, so older keys keep decrypting after a new one
becomes current; a value without the prefix was written before encryption and is read as it
is until ``tawasul keys rotate`` encrypts it. Empty strings stay empty (nothing to hide, and
"no text" keeps meaning the same to every query).

Encrypted values cannot be compared in SQL. A column that is looked up (a national ID, a phone
number, an address) has a ``BlindIndex`` companion holding HMAC-SHA256 of the clear value
under the lookup key: bind the clear value to it, in an insert or a comparison, and the hash
is what reaches the database.

The ``Keyring`` is attached to the engine's dialect when the database is opened
(``storage.db.Database``), and also installed as the process default for engines opened
without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, Text
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

PREFIX = "enc1"
_NONCE = 12
_KEY_BYTES = 32


class CryptoError(RuntimeError):
    """Personal data could not be encrypted or decrypted; the message says why."""


class MissingKey(CryptoError):
    pass


class UndecryptableValue(CryptoError):
    pass


def generate_key() -> str:
    """A new random key: 32 bytes in URL-safe base64 (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")


def parse_key(text: str, what: str = "data key") -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise ValueError(
            f"a {what} is 32 random bytes in URL-safe base64, 44 characters "
            "(make one with `tawasul keys generate`)"
        )
    return raw


def key_id(key: bytes) -> str:
    """A short public name for a key, derived from it (so it cannot be mislabelled)."""
    return hashlib.sha256(b"tawasul data key id\x00" + key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """The data keys (the first encrypts, every one decrypts) and the lookup key."""

    def __init__(self, data_keys: Sequence[str], lookup_key: str) -> None:
        if not data_keys:
            raise ValueError("at least one data key is needed")
        self._ciphers: dict[str, AESGCM] = {}
        order: list[str] = []
        for text in data_keys:
            raw = parse_key(text)
            kid = key_id(raw)
            if kid not in self._ciphers:
                self._ciphers[kid] = AESGCM(raw)
                order.append(kid)
        self.current_id = order[0]
        self.key_ids = tuple(order)
        self._current = self._ciphers[self.current_id]
        self._lookup = parse_key(lookup_key, "lookup key")
        self._aad = {kid: f"{PREFIX}:{kid}".encode("ascii") for kid in order}

    def encrypt(self, plain: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._current.encrypt(nonce, plain.encode("utf-8"), self._aad[self.current_id])
        return f"{PREFIX}:{self.current_id}:{_b64(nonce + sealed)}"

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored  # written before encryption was switched on
        _, kid, body = stored.split(":", 2)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UndecryptableValue(
                f"a stored value was encrypted with data key {kid}, which is not among the "
                f"configured keys ({', '.join(self.key_ids)}); add it back to "
                "security.data_keys (after the current one)"
            )
        try:
            raw = _unb64(body)
            plain = cipher.decrypt(raw[:_NONCE], raw[_NONCE:], self._aad[kid])
        except (InvalidTag, ValueError, binascii.Error):
            raise UndecryptableValue(
                f"a stored value encrypted with data key {kid} fails authentication: "
                "it was altered or damaged in the database"
            ) from None
        return plain.decode("utf-8")

    def is_current(self, stored: str | None) -> bool:
        """Whether this stored value needs no re-encryption (empty, or under the current key)."""
        return not stored or stored.startswith(f"{PREFIX}:{self.current_id}:")

    def blind(self, value: str) -> str:
        """The keyed hash a looked-up value is found by; the clear value never is."""
        return hmac.new(self._lookup, value.encode("utf-8"), hashlib.sha256).hexdigest()


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX + ":")


_installed: Keyring | None = None
_DIALECT_ATTRIBUTE = "tawasul_keyring"


def install(keyring: Keyring, engine: Any | None = None) -> None:
    """Use ``keyring`` for ``engine`` (its dialect), and by default for every other engine."""
    global _installed
    _installed = keyring
    if engine is not None:
        setattr(engine.dialect, _DIALECT_ATTRIBUTE, keyring)


def keyring_for(dialect: Any) -> Keyring:
    keyring = getattr(dialect, _DIALECT_ATTRIBUTE, None) or _installed
    if keyring is None:
        raise MissingKey(
            "no data key is configured, so personal data can be neither stored nor read: "
            "set TAWASUL_SECURITY_DATA_KEYS and TAWASUL_SECURITY_LOOKUP_KEY"
        )
    return keyring


class _Declared(UserDefinedType[Any]):
    """The column type as SQLite declares it: SQLite stores any text in any column, so the
    encrypted columns keep their original declaration there and need no table rebuild."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **_kw: Any) -> str:
        return self.spec


class EncryptedType(TypeDecorator[Any]):
    """What the encrypted column types share: their declaration, and no SQL comparison."""

    impl = Text
    cache_ok = True

    def __init__(self, sqlite_declared: str = "TEXT") -> None:
        super().__init__()
        self.sqlite_declared = sqlite_declared

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_Declared(self.sqlite_declared))  # type: ignore[no-any-return]
        return dialect.type_descriptor(Text())  # type: ignore[no-any-return]

    class Comparator(TypeDecorator.Comparator[Any]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            # A Python value would be compared with its ciphertext and never match; only NULL
            # and the empty string, which are stored as they are, can be compared.
            values = [o for o in other if not isinstance(o, ClauseElement)]
            stored_as_is = op.__name__ in ("eq", "ne", "is_", "is_not") and all(
                v is None or (isinstance(v, str) and v == "") for v in values
            )
            if values and not stored_as_is:
                raise TypeError(
                    f"{self.expr} is encrypted: SQL cannot compare it ({op.__name__}); "
                    "compare its keyed-hash column instead"
                )
            return super().operate(op, *other, **kwargs)

    comparator_factory = Comparator


class EncryptedText(EncryptedType):
    """Text encrypted at rest; ``None`` and ``""`` are stored as they are."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or value == "":
            return value  # type: ignore[no-any-return]
        return keyring_for(dialect).encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None or value == "":
            return value  # type: ignore[no-any-return]
        return keyring_for(dialect).decrypt(str(value))


class EncryptedJSON(EncryptedType):
    """A JSON value encrypted at rest (as the text of its JSON)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return keyring_for(dialect).encrypt(text)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            return value  # a driver that decoded a legacy JSON column itself
        return json.loads(keyring_for(dialect).decrypt(value))


class BlindIndex(TypeDecorator[str]):
    """HMAC-SHA256 (hex) of the clear value bound to it: what lookups compare. A value read
    back is the hash itself; binding it again would hash it twice."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return keyring_for(dialect).blind(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return value
