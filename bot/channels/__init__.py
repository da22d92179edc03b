"""The channels beyond the terminal and the web chat, each switched on by its config section.

Each channel module has ``install(service, runtime)``: it returns at once when the channel is
not configured, otherwise it adds its outbox senders, its webhook routes and its background
tasks (a poller, a mailbox reader) to the runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from bot.channels.email import config_problems as email_problems
from bot.channels.email import install as install_email
from bot.channels.request_reminders import install as install_reminders
from bot.channels.staff_alerts import Sink
from bot.channels.staff_alerts import install as install_staff_alerts
from bot.channels.telegram import install as install_telegram
from bot.channels.twilio import install as install_twilio
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

# The channels, in the order they start. Each module is imported here explicitly. The
# staff alerts come after the channels: they use the sinks the channels added.
INSTALLERS: list[Installer] = [
    install_telegram,
    install_twilio,
    install_email,
    install_staff_alerts,
    install_reminders,
]


# Each channel's own check of its settings: what it could not start with.
CHECKS: list[Callable[[Config], list[str]]] = [email_problems]


def config_problems(config: Config) -> list[str]:
    """The settings of enabled channels that cannot work, one sentence each."""
    return [problem for check in CHECKS for problem in check(config)]


def build_channels(service: Service) -> ChannelRuntime:
    runtime = ChannelRuntime()
    for install in INSTALLERS:
        install(service, runtime)
    return runtime
