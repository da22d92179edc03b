"""The channels beyond the terminal and the web chat, each switched on by its config section.

Each channel module has ``install(service, runtime)``, which adds its outbox senders, its
webhook routes and its background tasks (a poller, a mailbox reader) to the runtime. A
channel's module (and with it its vendor's library) is imported only when its section
switches it on.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from fastapi import APIRouter

from bot.channels.request_reminders import install as install_reminders
from bot.channels.staff_alerts import Sink
from bot.channels.staff_alerts import install as install_staff_alerts
from bot.config import Config
from bot.service import Service
from conversations.delivery import Sender

Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class ChannelRuntime:
    senders: dict[str, Sender] = field(default_factory=dict)
    routers: list[APIRouter] = field(default_factory=list)
    # Long-running work; each gets the stop event and returns soon after it is set.
    tasks: list[Task] = field(default_factory=list)
    # Called once the tasks have finished (close HTTP clients, connections).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    # Where staff are told about conversations entering the queue (besides the console).
    staff_sinks: list[Sink] = field(default_factory=list)


Installer = Callable[[Service, ChannelRuntime], None]


@dataclass(frozen=True)
class ChannelModule:
    """A channel's module, imported only when its section switches it on: a server loads
    the vendor libraries of the channels it uses, no others (python-telegram-bot and its
    HTTP stack alone hold about 8 MB)."""

    module: str
    enabled: Callable[[Config], bool]
    # Its own check of its settings (a function of the module), if it has one.
    check: str | None = None

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


# The channels, in the order they start.
CHANNELS: list[ChannelModule] = [
    ChannelModule("bot.channels.telegram", lambda config: config.telegram.enabled),
    ChannelModule("bot.channels.twilio", lambda config: config.twilio.enabled),
    ChannelModule("bot.channels.email", lambda config: config.email.enabled, "config_problems"),
]

# After the channels, always: the staff alerts use the sinks the channels added.
INSTALLERS: list[Installer] = [install_staff_alerts, install_reminders]


def config_problems(config: Config) -> list[str]:
    """The settings of enabled channels that cannot work, one sentence each."""
    problems: list[str] = []
    for channel in CHANNELS:
        if channel.check is not None and channel.enabled(config):
            problems += getattr(channel.load(), channel.check)(config)
    return problems


def build_channels(service: Service) -> ChannelRuntime:
    runtime = ChannelRuntime()
    for channel in CHANNELS:
        if channel.enabled(service.config):
            channel.load().install(service, runtime)
    for install in INSTALLERS:
        install(service, runtime)
    return runtime
