"""A local HTTP server speaking Twilio's REST API for Messages, and serving media files.

The real ``twilio`` client talks to it (through the configured API base URL) and our media
fetcher downloads from it; both must use the account's basic-auth credentials.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"


def segments(body: str) -> int:
    """Twilio's count, computed independently of the adapter: GSM-ish ASCII or UCS-2."""
    if all(ord(ch) < 128 for ch in body):
        single, per_part = 160, 153
    else:
        single, per_part = 70, 67
    if len(body) <= single:
        return 1
    return -(-len(body) // per_part)


@dataclass
class FakeError:
    status: int
    code: int
    message: str


@dataclass
class Media:
    data: bytes
    content_type: str
    hits: int = 0
    authorized_hits: int = 0


@dataclass
class FakeTwilio:
    messages: list[dict[str, Any]] = field(default_factory=list)
    errors: list[FakeError] = field(default_factory=list)
    media: dict[str, Media] = field(default_factory=dict)
    refused_auth: int = 0
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        app.router.add_get("/media/{name}", self._media)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def add_media(self, data: bytes, content_type: str) -> str:
        name = "ME" + secrets.token_hex(16)
        self.media[name] = Media(data, content_type)
        return f"{self.base_url}/media/{name}"

    def to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["To"].removeprefix("whatsapp:") == address]

    def _authorized(self, request: web.Request, account: str = ACCOUNT_SID) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == account and password == AUTH_TOKEN

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    async def _create(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        if account != ACCOUNT_SID or not self._authorized(request, account):
            self.refused_auth += 1
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        fields: dict[str, Any] = {key: str(form[key]) for key in form}
        fields["MediaUrl"] = [str(v) for v in form.getall("MediaUrl", [])]
        if "To" not in fields or not ("From" in fields or "MessagingServiceSid" in fields):
            return self._error(400, 21604, "A 'To' and a 'From' phone number are required.")
        if self.errors:
            error = self.errors.pop(0)
            return self._error(error.status, error.code, error.message)
        sid = "SM" + secrets.token_hex(16)
        body = fields.get("Body", "")
        fields["sid"] = sid
        self.messages.append(fields)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return web.json_response(
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": fields.get("From"),
                "messaging_service_sid": fields.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": str(segments(body)) if body else "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
                },
                "to": fields["To"],
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            },
            status=201,
        )

    async def _media(self, request: web.Request) -> web.Response:
        item = self.media.get(request.match_info["name"])
        if item is None:
            return self._error(404, 20404, "The requested resource was not found")
        item.hits += 1
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        item.authorized_hits += 1
        return web.Response(body=item.data, content_type=item.content_type)
