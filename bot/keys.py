"""The keys that encrypt personal data: from the configuration ([security]), or, in the demo,
generated once into a local file."""

from __future__ import annotations

import os
import tomllib
from contextlib import suppress
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


def data_keyring(config: Config, *, remind: bool = False) -> Keyring:
    """The configured keys; or refuse (production); or the demo's generated ones.
    ``remind``: say that the demo's keys are in use (the server and the terminal chat say it
    as they start; one-off commands only when they make the keys)."""
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
    return _demo_keyring(security.key_file, remind=remind)


def _demo_keyring(path: Path, *, remind: bool) -> Keyring:
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
    if created or (remind and path not in _warned):
        _warned.add(path)
        log.warning(
            "security.demo_keys_generated" if created else "security.demo_keys",
            path=str(path),
            advice="for a real installation set TAWASUL_SECURITY_DATA_KEYS and "
            "TAWASUL_SECURITY_LOOKUP_KEY; anyone who can read this file can read the data",
        )
    return keyring


def demo_key_ids(config: Config) -> dict[str, int]:
    """The ids of the data keys in the demo's key file, when there is one (never creating
    it), each with its place in the file."""
    from storage.crypto import key_id, parse_key

    path = config.security.key_file
    try:
        stored = tomllib.loads(path.read_text("utf-8"))
        return {key_id(parse_key(key)): n for n, key in enumerate(stored["data_keys"])}
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError):
        return {}


def configured_key_ids(config: Config) -> set[str]:
    """The ids of the data keys given in [security] data_keys (unusable ones left out)."""
    from storage.crypto import key_id, parse_key

    ids = set()
    for key in config.security.data_keys:
        with suppress(ValueError):
            ids.add(key_id(parse_key(key)))
    return ids


def demo_keys_in_use(config: Config) -> str | None:
    """A warning while the demo's generated keys encrypt the data."""
    security = config.security
    if security.data_keys or security.lookup_key or is_production(config):
        return None
    return (
        f"security: the demo's keys in {security.key_file} are in use; anyone who can read "
        "that file can read the data. For a real installation set TAWASUL_SECURITY_DATA_KEYS "
        "and TAWASUL_SECURITY_LOOKUP_KEY (each made with `tawasul keys generate`)"
    )


def demo_keys_left_behind(config: Config) -> str | None:
    """A warning when keys are configured but the demo's key file holds a data key among
    them not: what the demo stored cannot be read until it is added after the new one."""
    if not config.security.data_keys:
        return None
    missing = sorted(set(demo_key_ids(config)) - configured_key_ids(config))
    if not missing:
        return None
    path = config.security.key_file
    return (
        f"security.key_file: {path} holds the demo's data key {', '.join(missing)}, which is not "
        "among security.data_keys: what was stored with the demo keys cannot be read. To keep "
        f"it, put that key (data_keys in {path}) after the new one, "
        'TAWASUL_SECURITY_DATA_KEYS="NEW,DEMO", then run `tawasul keys rotate`'
    )


def undecryptable_advice(config: Config, error: Exception) -> str:
    """What to do about a value no configured key can read, naming the demo's key file
    when the missing key is the demo's."""
    import re

    text = str(error)
    match = re.search(r"data key ([0-9a-f]{8}), which is not among", text)
    if match is None:
        return text
    if match.group(1) in demo_key_ids(config):
        path = config.security.key_file
        return (
            f"{text}. That key is the demo's, kept in {path} (its data_keys): put it after "
            'the new one, TAWASUL_SECURITY_DATA_KEYS="NEW,DEMO", restart the server, then run '
            "`tawasul keys rotate`, which moves every value to the new key."
        )
    return f"{text}; then run `tawasul keys rotate`, which moves every value to the current key."
