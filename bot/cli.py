"""The `tawasul` command line."""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from bot.config import Config, ConfigError, config_path, config_warnings, load_config
from bot.logs import notice, setup_logging, uvicorn_log_config
from conversations.references import canonical_reference

P = ParamSpec("P")
T = TypeVar("T")


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return asyncio.run(func(*args, **kwargs))

    return wrapper


class State:
    def __init__(self, option: str | None) -> None:
        self.option = option
        self._config: Config | None = None

    @property
    def path(self) -> Path | None:
        return config_path(self.option)

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            setup_logging(self._config.logging.level, self._config.logging.format)
        return self._config


# Annotated: the command modules import it while this module is still being read.
pass_state: Callable[[Callable[..., Any]], Callable[..., Any]] = click.make_pass_decorator(State)


class LazyGroup(click.Group):
    """A group some of whose commands live in modules of their own, imported only when one of
    them runs (``lazy``: name -> (module, attribute)): `tawasul db upgrade` then loads neither
    the channels nor the knowledge base's model."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            module, name = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), (module, name)
            self.add_command(command, cmd_name)
        return command


class Commands(LazyGroup):
    """The command group; a stored value no configured key can read stops any command with
    what to do, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from storage.crypto import UndecryptableValue

        try:
            return super().invoke(ctx)
        except UndecryptableValue as exc:
            from bot.keys import undecryptable_advice

            state = ctx.obj
            config = state.config if isinstance(state, State) else Config()
            raise click.ClickException(undecryptable_advice(config, exc)) from None


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy={
        "telegram": ("bot.channels.telegram.cli", "telegram_group"),
        "faq": ("bot.faq_cli", "faq"),
        "staff": ("bot.staff_cli", "staff_group"),
        "outbox": ("bot.outbox_cli", "outbox_group"),
        "retention": ("bot.privacy_cli", "retention_group"),
        "keys": ("bot.keys_cli", "keys_group"),
    },
)
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    envvar="TAWASUL_CONFIG",
    help="Config file (default: $TAWASUL_CONFIG, else ./tawasul.toml if present).",
)
@click.version_option("0.1.0", prog_name="tawasul")
@click.pass_context
def main(ctx: click.Context, config_option: str | None) -> None:
    """Tawasul: the beneficiary-relations bot of an association.

    Every config key can also be set in the environment as TAWASUL_<SECTION>_<KEY>,
    for example TAWASUL_DATABASE_URL.
    """
    ctx.obj = State(config_option)


async def require_current_schema(engine: Any) -> None:
    """Commands refuse a database whose schema is behind the code, and say what to run."""
    from storage.migrate import current_revision, head_revision

    if await current_revision(engine) != head_revision():
        raise click.ClickException("the database is not up to date; run `tawasul db upgrade` first")


def check_before_opening(config: Config, *, existing_database: bool) -> None:
    """What stops a command before anything is created: keys unusable, or missing in
    production; then (``existing_database``) a SQLite file that is not there."""
    from bot.keys import check_keys

    try:
        check_keys(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if existing_database:
        require_database_file(config)


def require_database_file(config: Config) -> None:
    """A command that needs the data refuses a SQLite file that is not there (a typo in the
    path, or a new machine) rather than creating an empty database, and a key file, for
    nothing. ``tawasul db upgrade`` creates it."""
    from storage.db import sqlite_path

    path = sqlite_path(config.database.url)
    if path is not None and not path.exists():
        raise click.ClickException(
            f"no database at {path}: run `tawasul db upgrade` to create it, or correct "
            "[database] url (TAWASUL_DATABASE_URL) if it is elsewhere"
        )


def _opened(open_it: Callable[[], T]) -> T:
    """``Database`` or ``Service`` made from the configuration, or what stops it, said plainly."""
    from conversations.forms import FormError
    from storage.db import DatabaseFolderMissing

    try:
        return open_it()
    except DatabaseFolderMissing as exc:
        raise click.ClickException(f"database.url: {exc}") from None
    except FormError as exc:
        raise click.ClickException(
            f"knowledge.forms_dir: {exc}. Correct the form file (or move it out of the folder) "
            "and start again; `tawasul config check` checks every form."
        ) from None


async def require_reachable(engine: Any, url: str) -> None:
    """Connect once, so that a wrong address says so in a sentence rather than a traceback
    from deep inside the driver."""
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        if not connection_failure(exc):
            raise
        raise click.ClickException(unreachable(url, exc)) from None


def connection_failure(exc: BaseException) -> bool:
    """Whether the error is the database's (unreachable, refused, unknown, no such file)."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError, InterfaceError

    return isinstance(exc, OSError | DBAPIError | InterfaceError | sqlite3.Error) or (
        type(exc).__module__.startswith("asyncpg")
    )


def unreachable(url: str, exc: BaseException) -> str:
    """One paragraph: which database (without its password), why, and what to check."""
    import re
    import socket

    from sqlalchemy.engine import make_url

    from bot.config import shown_url

    cause = getattr(exc, "orig", None) or exc
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if isinstance(cause, ConnectionRefusedError):
        reason = f"nothing accepts connections at {where}"
    elif isinstance(cause, socket.gaierror):
        reason = f"the host name {parsed.host} is not known"
    elif isinstance(cause, TimeoutError):
        reason = f"no answer from {where} in time"
    else:
        text = " ".join(str(cause).split())
        reason = re.sub(r"^(\([^)]*\) )?<class '[^']+'>:\s*", "", text) or type(cause).__name__
    if parsed.drivername.startswith("sqlite"):
        advice = (
            "Check that the file is a Tawasul database and that the user running Tawasul may "
            "read and write it and its folder."
        )
    else:
        advice = (
            f"Check that PostgreSQL is running and accepts connections at {where}, that the "
            f"database {parsed.database or '(none given)'} exists (createdb -O "
            f"{parsed.username or 'USER'} {parsed.database or 'DATABASE'}) and that the user "
            "and password are right."
        )
    return (
        f"cannot open the database {shown_url(url)}: {reason}. {advice} The address is "
        "[database] url, or TAWASUL_DATABASE_URL."
    )


@asynccontextmanager
async def opened_database(config: Config, *, check_schema: bool = True) -> AsyncIterator[Any]:
    """The configured database for one command, disposed of when the command ends."""
    from storage.db import Database

    check_before_opening(config, existing_database=check_schema)
    database = _opened(
        lambda: Database(
            config.database.url,
            keyring=_keyring(config),
            connect_timeout=config.database.connect_timeout_seconds,
        )
    )
    try:
        await require_reachable(database.engine, config.database.url)
        if check_schema:
            await require_current_schema(database.engine)
        yield database
    finally:
        await database.dispose()


async def _service(
    config: Config, *, check_schema: bool = True, remind_demo_keys: bool = False
) -> Any:
    from bot.service import Service

    check_before_opening(config, existing_database=check_schema)
    _keyring(config, remind=remind_demo_keys)  # the demo's keys, made on first use
    service = _opened(lambda: Service(config))
    try:
        await require_reachable(service.db.engine, config.database.url)
        if check_schema:
            await require_current_schema(service.db.engine)
    except click.ClickException:
        await service.close()
        raise
    return service


def _keyring(config: Config, *, remind: bool = False) -> Any:
    from bot.keys import data_keyring

    try:
        return data_keyring(config, remind=remind)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def local(when: datetime, config: Config) -> datetime:
    """A stored (UTC) moment in the association's time zone."""
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(config.hours.timezone))


def riyadh(when: datetime | None, config: Config) -> str | None:
    return local(when, config).isoformat(timespec="minutes") if when is not None else None


# -- serve ---------------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on (default from [server] host: 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port (default from [server] port: 8080)."
)
@pass_state
def serve(state: State, host: str | None, port: int | None) -> None:
    """Serve the web chat, the webhooks and the workers."""
    import uvicorn

    from bot.app import STOP_SHARES, SWITCH_INTERVAL_SECONDS, create_app
    from bot.channels import config_problems

    config = state.config
    problems = config_problems(config)
    if problems:
        raise click.ClickException("\n".join(problems))
    check_before_opening(config, existing_database=True)
    _keyring(config, remind=True)
    from bot.knowledge import ensure_faq_file

    faq_path = config.knowledge.faq_path
    if faq_path is not None and ensure_faq_file(faq_path):
        notice(
            f"Created {faq_path} from the default knowledge base: edit it to suit the "
            "association; changes are picked up without a restart."
        )
    host = config.server.host = host or config.server.host
    port = config.server.port = port or config.server.port
    _check_free(host, port)
    service = asyncio.run(_service_checked(config))
    try:
        app = create_app(service)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    knowledge = service.knowledge
    notice(f"Knowledge base: {len(knowledge.entries)} answers; forms: {', '.join(knowledge.forms)}")
    if knowledge.refused:
        notice(
            f"The knowledge-base file is broken and was not loaded: {knowledge.refused}. "
            "Fix it: it is loaded as soon as it is saved, without a restart."
        )
    notice(f"Tawasul is serving on http://{host}:{port}/  (web chat)")
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=config.logging.level,
        access_log=False,
        log_config=uvicorn_log_config(config.logging.format),
        proxy_headers=True,
        timeout_graceful_shutdown=max(
            1, round(config.server.shutdown_seconds * STOP_SHARES["requests"])
        ),
    )


def _check_free(host: str, port: int) -> None:
    """Refuse at once, before anything starts or is announced, when the address is taken
    (another Tawasul still running, say): binding as the server will, then letting go."""
    import socket

    # As uvicorn binds: IPv6 for an address with a colon, else IPv4.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another Tawasul "
                "or program using it? stop it, or choose another port with --port or "
                "[server] port)"
            ) from None


async def _service_checked(config: Config) -> Any:
    service = await _service(config)
    # The engine and pool were opened on this loop; uvicorn runs its own.
    await service.db.engine.dispose()
    return service


# -- chat ----------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--user", default="1", show_default=True, help="Who is writing (an id of your choice)."
)
@click.option(
    "--json",
    "json_lines",
    is_flag=True,
    help="For each input line print exactly one JSON line with the replies.",
)
@pass_state
@run_async
async def chat(state: State, user: str, json_lines: bool) -> None:
    """Talk to the bot in the terminal (/attach PATH sends a file, /help lists commands)."""
    from adapters.console import run_console
    from bot.service import Service
    from conversations.messages import Channel

    service: Service = await _service(state.config, remind_demo_keys=True)
    limit = int(state.config.storage.max_attachment_mb * 1024 * 1024)

    async def handler(msg: Any) -> list[Any]:
        delivered = await service.handle(msg)
        await service.mark_sent([d.message_id for d in delivered])
        return [d.reply for d in delivered]

    async def save_file(path: Path) -> Any:
        data = await asyncio.to_thread(path.read_bytes)
        return await service.files.save_bytes(
            data, declared_type="", filename=path.name, max_bytes=limit
        )

    async def waiting() -> list[Any]:
        return await service.waiting_replies(Channel.CONSOLE, user)

    try:
        await run_console(handler, save_file, user=user, json_lines=json_lines, waiting=waiting)
    finally:
        await service.close()


# -- db ------------------------------------------------------------------------------------------


@main.group(
    "db",
    cls=LazyGroup,
    lazy={"backup": ("bot.privacy_cli", "db_backup"), "restore": ("bot.privacy_cli", "db_restore")},
)
def _db() -> None:
    """The database schema."""


# Annotated: the command modules import it while this module is still being read.
db: click.Group = _db


async def _revision(config: Config) -> str | None:
    from storage.migrate import current_revision

    async with opened_database(config, check_schema=False) as database:
        return await current_revision(database.engine)


@db.command("upgrade")
@pass_state
@run_async
async def db_upgrade(state: State) -> None:
    """Create or migrate the database to the current schema."""
    from storage.migrate import head_revision, upgrade

    before = await _revision(state.config)
    steps = _steps_after(before)
    if steps and before is not None:
        # One line a step before they run: some rewrite whole tables and take a while.
        click.echo(f"Migrating from {before}:", err=True)
        for revision, title in steps:
            click.echo(f"  {revision}  {title}", err=True)
    async with opened_database(state.config, check_schema=False) as database:
        await upgrade(database.engine)
    after = await _revision(state.config)
    if before == after:
        click.echo(f"Database already up to date (revision {after}).")
    else:
        click.echo(
            f"Database migrated from {before or 'empty'} to {after} (head {head_revision()})."
        )
    if before is not None and any(revision == ENCRYPTION_REVISION for revision, _ in steps):
        click.echo(
            "Personal data stored before is still in clear: run `tawasul keys rotate` to "
            "encrypt it (with the keys in [security]; see Personal data encrypted at rest in "
            "the README)."
        )


# The migration from which personal data is stored encrypted.
ENCRYPTION_REVISION = "0006"


def _steps_after(revision: str | None) -> list[tuple[str, str]]:
    """The migrations still to run after ``revision``, oldest first, with their titles."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    steps = script.iterate_revisions("heads", revision or "base")
    return [
        (step.revision, (step.doc or "").strip().splitlines()[0] if step.doc else "")
        for step in reversed(list(steps))
        if step.revision != revision
    ]


@db.command("current")
@pass_state
@run_async
async def db_current(state: State) -> None:
    """Show the schema revision of the database."""
    from storage.migrate import head_revision

    current = await _revision(state.config)
    click.echo(f"{current or 'empty'} (latest: {head_revision()})")


# -- queue and requests --------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
@run_async
async def queue(state: State, as_json: bool) -> None:
    """Conversations waiting for a staff member, oldest first (IDs and phone numbers in the
    last message masked)."""
    from conversations.references import mask_long_numbers
    from storage.repository import Tx

    async with opened_database(state.config) as database, database.session(write=False) as session:
        rows = await Tx(session).queue()
    now = datetime.now(UTC)
    items = [
        {
            "conversation": c.id,
            "beneficiary": c.beneficiary_id,
            "channel": c.last_channel,
            "lang": (c.state or {}).get("lang"),
            "reason": c.handoff_reason,
            "queued_at": riyadh(c.queued_at, state.config),
            "waiting_minutes": int((now - c.queued_at).total_seconds() // 60)
            if c.queued_at
            else None,
            "last_message": mask_long_numbers(last.text or "")[:80] if last else "",
        }
        for c, last in rows
    ]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("The queue is empty.")
        return
    for item in items:
        click.echo(
            f"#{item['conversation']}  {item['waiting_minutes']} min  {item['channel']}  "
            f"{item['lang']}  {item['reason']}  {item['last_message']}"
        )


@main.group()
def requests() -> None:
    """Support requests and other submitted forms."""


async def _request_dict(tx: Any, row: Any, config: Config, *, full: bool) -> dict[str, Any]:
    from conversations.fields import to_hijri
    from storage.followup import request_info

    data: dict[str, Any] = {
        "reference": row.reference,
        "form": row.form_id,
        "kind": row.kind,
        "status": row.status,
        "channel": row.channel,
        "lang": row.lang,
        "beneficiary": row.beneficiary_id,
        "submitted_at": riyadh(row.submitted_at, config),
        "due_at": riyadh(row.due_at, config),
        # The day in the association's time: 01:21 in Riyadh is still the day before in UTC.
        "due_hijri": to_hijri(local(row.due_at, config).date()) if row.due_at else None,
        "declared_at": riyadh(row.declared_at, config),
        "declaration_channel": row.declaration_channel,
    }
    if full:
        details = await tx.request_details(row)
        data["answers"] = {
            a.field: {"value": a.value, "display": a.display} for a in details["answers"]
        }
        data["documents"] = [
            {
                "field": d.field,
                "ref": d.ref,
                "content_type": d.content_type,
                "size": d.size,
                "filename": d.filename,
            }
            for d in details["documents"]
        ]
        # What the beneficiary sent when asked for more information, with its files.
        data["info"] = [
            {
                "at": riyadh(item.info.received_at, config),
                "channel": item.info.channel,
                "text": item.info.text,
                "documents": [d.filename for d in item.documents],
            }
            for item in await request_info(tx.session, row.id)
        ]
        data["history"] = [
            {
                "from": h.from_status,
                "to": h.to_status,
                "at": riyadh(h.at, config),
                "by": h.actor,
                "note": h.note,
            }
            for h in details["history"]
        ]
    return data


def cli_actor() -> str:
    """Who ran a command, for the audit log: the system account (whoever can run commands on
    the server can read the database; the log at least says which account did)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@requests.command("list")
@click.option(
    "--status",
    type=click.Choice(
        ["submitted", "under_review", "needs_info", "approved", "rejected", "closed"]
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON with every answer.")
@pass_state
@run_async
async def requests_list(state: State, status: str | None, as_json: bool) -> None:
    """List requests, those due soonest first."""
    from storage.repository import Tx

    async with (
        opened_database(state.config) as database,
        database.session(write=as_json) as session,
    ):
        tx = Tx(session)
        rows = await tx.request_rows(status)
        items = [await _request_dict(tx, r, state.config, full=as_json) for r in rows]
        if as_json:  # every answer of every request, national IDs and mobiles among them
            await tx.audit(cli_actor(), "requests.exported", status or "all", count=len(items))
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("No requests.")
        return
    now = datetime.now(UTC).isoformat()
    for item in items:
        late = (
            " LATE"
            if item["due_at"]
            and item["due_at"] < now
            and item["status"] in ("submitted", "under_review", "needs_info")
            else ""
        )
        click.echo(
            f"{item['reference']}  {item['status']:<12}  due {item['due_at'] or '—'}"
            f"{late}  {item['form']}  via {item['channel']}"
        )


@requests.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
@run_async
async def requests_show(state: State, reference: str, as_json: bool) -> None:
    """Show one request with every answer and its history."""
    from storage.repository import NotFound, Tx

    async with opened_database(state.config) as database, database.session() as session:
        tx = Tx(session)
        try:
            row = await tx.request_by_reference(canonical_reference(reference))
        except NotFound:
            raise click.ClickException(f"no request with reference {reference}") from None
        item = await _request_dict(tx, row, state.config, full=True)
        await tx.audit(cli_actor(), "request.viewed", row.reference)
    if as_json:
        click.echo(json.dumps(item, ensure_ascii=False, indent=2))
        return
    click.echo(f"{item['reference']}  ({item['form']}, {item['status']})")
    click.echo(f"  submitted {item['submitted_at']} via {item['channel']}")
    click.echo(f"  declared  {item['declared_at'] or '—'}")
    click.echo(f"  due       {item['due_at'] or '—'}  ({item['due_hijri'] or '—'} AH)")
    click.echo("  answers:")
    for name, answer in item["answers"].items():
        click.echo(f"    {name}: {answer['display']}")
    for doc in item["documents"]:
        if not doc["field"].startswith("info:"):  # those are listed with what came with them
            size = f"{doc['content_type']}, {doc['size']} bytes"
            click.echo(f"    document: {doc['filename']} ({size})")
    if item["info"]:
        click.echo("  information sent by the beneficiary:")
        for info in item["info"]:
            files = "".join(f"\n      file: {name}" for name in info["documents"])
            click.echo(f"    {info['at']} via {info['channel']}: {info['text'] or '—'}{files}")
    click.echo("  history:")
    for h in item["history"]:
        click.echo(f"    {h['at']}  {h['from']} → {h['to']}  by {h['by']}  {h['note']}")


@requests.command("set-status")
@click.argument("reference")
@click.argument(
    "status", type=click.Choice(["under_review", "needs_info", "approved", "rejected", "closed"])
)
@click.option("--note", default="", help="A note sent to the beneficiary with the change.")
@click.option("--by", "actor", help="Who decides (default: cli:USER, the system account).")
@pass_state
@run_async
async def requests_set_status(
    state: State, reference: str, status: str, note: str, actor: str | None
) -> None:
    """Change a request's status and tell the beneficiary (closing asks for a rating)."""
    from conversations.ports import RequestStatus
    from storage.repository import InvalidTransition, NotFound

    reference = canonical_reference(reference)
    service = await _service(state.config)
    try:
        await service.change_request_status(
            reference, RequestStatus(status), actor=actor or cli_actor(), note=note
        )
    except NotFound:
        raise click.ClickException(f"no request with reference {reference}") from None
    except InvalidTransition as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await service.close()
    click.echo(f"{reference} is now {status}; the beneficiary will be told.")


@main.group()
def conversations() -> None:
    """Conversations with beneficiaries."""


@conversations.command("close")
@click.argument("conversation_id", type=int)
@click.option("--by", "actor", help="Who closes it (default: cli:USER, the system account).")
@pass_state
@run_async
async def conversations_close(state: State, conversation_id: int, actor: str | None) -> None:
    """Give a conversation back to the bot; the beneficiary is asked for a rating when a
    staff member had taken it."""
    from storage.repository import NotFound, NotOpen

    service = await _service(state.config)
    try:
        rated = await service.close_conversation(conversation_id, actor=actor or cli_actor())
    except NotFound:
        raise click.ClickException(f"no conversation {conversation_id}") from None
    except NotOpen:
        raise click.ClickException(
            f"conversation {conversation_id} is with the bot (closed already, or never handed "
            "to staff): nothing was sent"
        ) from None
    finally:
        await service.close()
    asked = "a satisfaction survey was sent" if rated else "nobody had taken it: no survey"
    click.echo(f"Conversation {conversation_id} closed; {asked}.")


# -- config --------------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """The configuration."""


@config_group.command("check")
@pass_state
def config_check(state: State) -> None:
    """Validate the config file and the environment, and try the database; say exactly
    which key is wrong."""
    from bot.channels import config_problems
    from bot.config import unknown_variables
    from bot.keys import check_keys, demo_keys_in_use, demo_keys_left_behind
    from bot.knowledge import read_knowledge
    from conversations.forms import load_forms

    path = state.path
    try:
        config = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    problems = config_problems(config)
    try:
        read_knowledge(config.knowledge.faq_path)
    except (OSError, ValueError) as exc:
        problems.append(f"knowledge: {exc}")
    try:
        load_forms(config.knowledge.forms_dir)
    except (OSError, ValueError) as exc:
        problems.append(f"knowledge.forms_dir: {exc}")
    try:
        check_keys(config)
    except ConfigError as exc:
        problems.append(str(exc))
    reachable, database = asyncio.run(_database_status(config))
    if not reachable:
        problems.append(database)
    for problem in problems:
        click.echo(problem, err=True)
    warnings = [*config_warnings(config), *unknown_variables()]
    warnings += [w for w in (demo_keys_in_use(config), demo_keys_left_behind(config)) if w]
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if problems:
        sys.exit(1)
    click.echo(database)
    click.echo(f"{path or 'defaults'}: OK (database {config.database.url.split('://')[0]})")


async def _database_status(config: Config) -> tuple[bool, str]:
    """Whether the database can be opened, and a line saying so (its schema, or why not).
    Creates nothing: a SQLite file not there yet is said to be so."""
    from bot.config import shown_url
    from storage.db import DEFAULT_FOLDER, Database, DatabaseFolderMissing, sqlite_path
    from storage.migrate import current_revision, head_revision

    url = config.database.url
    path = sqlite_path(url)
    if (
        path is not None
        and not path.exists()
        and (path.parent.is_dir() or path.parent == DEFAULT_FOLDER)
    ):
        return True, f"database: {path} does not exist yet; `tawasul db upgrade` creates it"
    try:
        database = Database(url, connect_timeout=config.database.connect_timeout_seconds)
    except DatabaseFolderMissing as exc:
        return False, f"database.url: {exc}"
    try:
        await require_reachable(database.engine, url)
        current = await current_revision(database.engine)
    except click.ClickException as exc:
        return False, exc.message
    finally:
        await database.dispose()
    head = head_revision()
    if current == head:
        schema = f"schema {current}, up to date"
    elif current is None:
        schema = "empty: run `tawasul db upgrade`"
    else:
        schema = f"schema {current}, behind {head}: run `tawasul db upgrade`"
    return True, f"database: connected to {shown_url(url)} ({schema})"
