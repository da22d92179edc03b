"""What the console needs from the running system, as protocols the service satisfies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from conversations.catalog import Catalog
from conversations.faq import FaqEntry
from conversations.forms import Form
from conversations.ports import RequestStatus
from storage.db import Database
from storage.files import AttachmentStore
from storage.models import OutboxItem


class StaffSettings(Protocol):
    @property
    def secret_key(self) -> str: ...

    @property
    def cookie_secure(self) -> bool: ...

    @property
    def login_attempts_per_minute(self) -> int: ...

    @property
    def login_attempts_per_address_per_minute(self) -> int: ...


class OrganizationSettings(Protocol):
    @property
    def name_ar(self) -> str: ...

    @property
    def name_en(self) -> str: ...


class HoursSettings(Protocol):
    @property
    def timezone(self) -> str: ...


class ServerSettings(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class Settings(Protocol):
    @property
    def staff(self) -> StaffSettings: ...

    @property
    def organization(self) -> OrganizationSettings: ...

    @property
    def hours(self) -> HoursSettings: ...

    @property
    def server(self) -> ServerSettings: ...


class FormsSource(Protocol):
    @property
    def forms(self) -> Mapping[str, Form]: ...


class MissView(Protocol):
    """A question the bot could not answer."""

    @property
    def id(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def lang(self) -> str: ...

    @property
    def at(self) -> datetime: ...


class KnowledgeAdmin(Protocol):
    """The association's knowledge-base file as administrators edit it. Writes are checked
    and atomic (``FaqError`` with the reason when refused, the old file kept) and the
    running index reloads."""

    @property
    def path(self) -> Path | None: ...

    @property
    def entries(self) -> Sequence[FaqEntry]: ...

    def file_version(self) -> str: ...

    async def save(
        self, entry: FaqEntry, *, original_id: str | None, actor: str, seen: str = ""
    ) -> None: ...

    async def misses(self, limit: int = 100, search: str = "") -> Sequence[MissView]: ...

    async def teach(
        self,
        miss_id: int,
        entry_id: str,
        *,
        actor: str,
        new_entry: FaqEntry | None = None,
        wording: str = "",
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class SettingView:
    """One configuration key as the settings page shows it (secrets already masked)."""

    key: str
    value: str
    source: str  # "file", "environment" or "default"
    env: str  # its TAWASUL_ variable
    secret: bool = False


@dataclass(frozen=True, slots=True)
class SettingsSection:
    name: str
    settings: tuple[SettingView, ...]


class Backend(Protocol):
    """The service as the console sees it (``bot.service.Service`` fits)."""

    @property
    def config(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def files(self) -> AttachmentStore: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def knowledge(self) -> FormsSource: ...

    @property
    def outbox_wakeup(self) -> asyncio.Event: ...

    @property
    def knowledge_admin(self) -> KnowledgeAdmin: ...

    def effective_settings(self) -> Sequence[SettingsSection]: ...

    async def failed_outbox(self) -> Sequence[OutboxItem]: ...

    async def retry_outbox(self, ids: Sequence[int] | None) -> Sequence[int]: ...

    async def close_conversation(self, conversation_id: int, *, actor: str) -> bool: ...

    async def change_request_status(
        self, reference: str, status: RequestStatus, *, actor: str, note: str = ""
    ) -> None: ...
