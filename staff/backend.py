"""What the console needs from the running system, as protocols the service satisfies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from conversations.catalog import Catalog
from conversations.forms import Form
from conversations.ports import RequestStatus
from storage.db import Database
from storage.files import AttachmentStore


class StaffSettings(Protocol):
    @property
    def secret_key(self) -> str: ...

    @property
    def cookie_secure(self) -> bool: ...

    @property
    def login_attempts_per_minute(self) -> int: ...


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

    async def close_conversation(self, conversation_id: int, *, actor: str) -> None: ...

    async def change_request_status(
        self, reference: str, status: RequestStatus, *, actor: str, note: str = ""
    ) -> None: ...
