"""Server-sent events: the page is told when what it shows has changed, then fetches it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from fastapi import Request
from fastapi.responses import StreamingResponse

# A stream ends after this long and the browser reconnects by itself (EventSource), so a
# server shutting down never waits long on open streams.
STREAM_SECONDS = 20.0
KEEPALIVE_SECONDS = 10.0


def _encode(signatures: Mapping[str, str]) -> str:
    return ";".join(f"{name}={value}" for name, value in sorted(signatures.items()))


def _decode(raw: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in raw.split(";") if "=" in item)
    return {name: value for name, _, value in pairs}


# The signature reads in flight when their page went away (see ``_finished``).
_reading: set[asyncio.Task[dict[str, str]]] = set()


async def _finished(signature: Callable[[], Awaitable[dict[str, str]]]) -> dict[str, str]:
    """Read the signature to the end even when the page goes away meanwhile.

    The server cancels a stream whose browser left, again at every await while it unwinds
    (anyio). Cancelled inside a database call, the driver's connection was invalidated, and
    the graceful close SQLAlchemy starts for it was cancelled in turn: the connection was
    forced shut under it, and the close task was left pending for ever ("Task was destroyed
    but it is pending"). The read runs in a task of its own, which the cancellation does not
    reach: it ends its session as usual, and only the stream stops."""

    async def read() -> dict[str, str]:
        return await signature()

    task = asyncio.ensure_future(read())
    _reading.add(task)
    task.add_done_callback(_reading.discard)
    # A failure after the page left is nobody's to read: retrieved here, not logged as lost.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return await asyncio.shield(task)


def event_stream(
    request: Request,
    signature: Callable[[], Awaitable[dict[str, str]]],
    *,
    since: Mapping[str, str],
    poll: float,
    lifetime: float = STREAM_SECONDS,
) -> StreamingResponse:
    """Emit an event named after each signature that differs from what the page has.

    The page passes what it was rendered with (``since``); after a reconnect the browser's
    Last-Event-ID says what it last heard.
    """
    known = dict(since)
    last_id = request.headers.get("last-event-id")
    if last_id:
        known.update(_decode(last_id))

    async def events() -> AsyncIterator[str]:
        yield "retry: 1500\n\n"
        started = last_sent = time.monotonic()
        while time.monotonic() - started < lifetime:
            current = await _finished(signature)
            changed = [name for name, value in current.items() if known.get(name) != value]
            if changed:
                known.update(current)
                ident = _encode(known)
                for name in changed:
                    yield f"id: {ident}\nevent: {name}\ndata: {current[name]}\n\n"
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(poll)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
