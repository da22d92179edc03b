"""The effective configuration for the console's settings page: every key by section, where
its value comes from (the file, the environment or the default), secrets masked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import ENV_PREFIX, Config
from staff.backend import SettingsSection, SettingView

SECRET_WORDS = ("token", "secret", "password")
MASK = "••••••"


def is_secret(key: str) -> bool:
    return any(word in key for word in SECRET_WORDS)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _database_url(value: str) -> str:
    """The URL with its password hidden."""
    try:
        return make_url(value).render_as_string(hide_password=True)
    except ArgumentError:
        return MASK


def shown(section: str, key: str, value: Any) -> tuple[str, bool]:
    """What the page may show of a value, and whether it is a secret."""
    if is_secret(key):
        return (MASK if value else ""), True
    if section == "database" and key == "url":
        return _database_url(str(value)), False
    return _text(value), False


def effective_settings(
    config: Config, environ: Mapping[str, str] | None = None
) -> list[SettingsSection]:
    environ = os.environ if environ is None else environ
    sections = []
    for name in Config.model_fields:
        section: BaseModel = getattr(config, name)
        # Set in the file, or by `serve --host/--port` after loading.
        given = section.model_fields_set
        rows = []
        for key in type(section).model_fields:
            env = f"{ENV_PREFIX}{name}_{key}".upper()
            source = "environment" if env in environ else "file" if key in given else "default"
            value, secret = shown(name, key, getattr(section, key))
            rows.append(SettingView(key, value, source, env, secret))
        sections.append(SettingsSection(name, tuple(rows)))
    return sections
