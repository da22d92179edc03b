"""The keys that encrypt personal data: from the configuration ([security]), or, in the demo,
generated once into a local file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import structlog

from bot.config import Config, ConfigError
from storage.crypto import Keyring, generate_key

log = structlog.get_logger("tawasul.keys")
_warned: set[Path] = set()


def is_production(config: Config) -> bool:
    """``auto`` is production on PostgreSQL (where several machines share the data and a
    key generated on one of them would not do) and demo on SQLite."""
    mode = config.security.mode
    if mode == "auto":
        return not config.database.url.startswith("sqlite")
    return mode == "production"


def check_keys(config: Config) -> None:
    """Raise ``ConfigError`` when the keys given are unusable, or missing in production;
    unlike ``data_keyring`` it never creates the demo's key file."""
    if config.security.data_keys or config.security.lookup_key or is_production(config):
        data_keyring(config)


def data_keyring(config: Config) -> Keyring:
    """The configured keys; or refuse (production); or the demo's generated ones."""
    security = config.security
    if security.data_keys or security.lookup_key:
        if not security.data_keys:
            raise ConfigError(
                "security.lookup_key is set but security.data_keys is empty: give both "
                "(TAWASUL_SECURITY_DATA_KEYS, TAWASUL_SECURITY_LOOKUP_KEY)"
            )
        if not security.lookup_key:
            raise ConfigError(
                "security.data_keys is set but security.lookup_key is empty: give both "
                "(TAWASUL_SECURITY_LOOKUP_KEY; make one with `tawasul keys generate`)"
            )
        try:
            return Keyring(security.data_keys, security.lookup_key)
        except ValueError as exc:
            raise ConfigError(f"security: {exc}") from None
    if is_production(config):
        raise ConfigError(
            "no data key configured: in production mode Tawasul keeps personal data "
            "encrypted and does not start without its keys. Set TAWASUL_SECURITY_DATA_KEYS "
            "and TAWASUL_SECURITY_LOOKUP_KEY (make each with `tawasul keys generate`), or set "
            'security.mode = "demo" for a trial installation'
        )
    return _demo_keyring(security.key_file)


def _demo_keyring(path: Path) -> Keyring:
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = f'data_keys = ["{generate_key()}"]\nlookup_key = "{generate_key()}"\n'
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of the installation made it first
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(content)
            created = True
    try:
        stored = tomllib.loads(path.read_text("utf-8"))
        keyring = Keyring(stored["data_keys"], stored["lookup_key"])
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a usable key file ({exc})") from None
    if created or path not in _warned:
        _warned.add(path)
        log.warning(
            "security.demo_keys_generated" if created else "security.demo_keys",
            path=str(path),
            advice="for a real installation set TAWASUL_SECURITY_DATA_KEYS and "
            "TAWASUL_SECURITY_LOOKUP_KEY; anyone who can read this file can read the data",
        )
    return keyring
