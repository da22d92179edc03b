"""A local Bot API server: the real python-telegram-bot client talks to it over HTTP.

It speaks the wire format: POSTs form-encoded (nested objects as JSON strings) or multipart
for uploads, answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": ..., "parameters": {...}}`` with the same HTTP status. getUpdates honours
``offset`` and holds the call up to ``timeout`` seconds; stopping the server releases it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

TOKEN = "123456789:AAF-test-token_for-Tawasul"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Tawasul", "username": "tawasul_bot"}
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # what Telegram's own servers let getFile serve


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class Sent:
    chat_id: int
    message_id: int
    at: float
    text: str = ""
    markup: dict[str, Any] | None = None  # as it is now, after any edit
    document: tuple[str, bytes] | None = None
    sent_markup: dict[str, Any] | None = None  # as it was sent

    @property
    def buttons(self) -> list[dict[str, str]]:
        """The inline buttons the message carries now."""
        if not self.markup or "inline_keyboard" not in self.markup:
            return []
        return [button for row in self.markup["inline_keyboard"] for button in row]

    def as_update_message(self) -> dict[str, Any]:
        """The message as Telegram puts it in a callback query."""
        content: dict[str, Any] = {
            "message_id": self.message_id,
            "from": BOT_USER,
            "chat": {"id": self.chat_id, "type": "private"},
            "date": int(time.time()),
            "text": self.text,
        }
        if self.buttons:
            content["reply_markup"] = self.markup
        return content


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    skip: int = 0  # calls that succeed before this failure


class FakeBotAPI:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.cond = threading.Condition()
        self.updates: list[dict[str, Any]] = []  # held until a later offset confirms them
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self.failures: dict[str, list[Failure]] = {}
        self.webhook: dict[str, Any] | None = None
        self.commands: dict[str, list[dict[str, str]]] = {}
        # What the bot sent, as the chat shows it: text, the keyboard it carries now, a document.
        self.messages: list[Sent] = []
        self.closed = False
        self._update_ids = itertools.count(5000)
        self._message_ids = itertools.count(100)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- life -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def start(self) -> FakeBotAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()  # release held long polls at once
        self._server.shutdown()
        self._server.server_close()

    # -- what a test does -------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; its id is given when it has none."""
        with self.cond:
            update.setdefault("update_id", next(self._update_ids))
            self.updates.append(update)
            self.cond.notify_all()
        return int(update["update_id"])

    def new_update_id(self) -> int:
        return next(self._update_ids)

    async def deliver(self, update: dict[str, Any], *, secret: str | None = None) -> httpx.Response:
        """POST an update to the registered webhook, as Telegram does."""
        assert self.webhook is not None, "no webhook set"
        update.setdefault("update_id", next(self._update_ids))
        token = self.webhook.get("secret_token") if secret is None else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token else {}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(self.webhook["url"], json=update, headers=headers)

    def add_file(self, file_id: str, data: bytes, path: str) -> None:
        self.files[file_id] = (path, data)

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """The next ``times`` calls of ``method`` fail, once ``after`` calls have succeeded."""
        planned = [Failure(status, description, retry_after) for _ in range(times)]
        planned[0].skip = after
        self.failures.setdefault(method, []).extend(planned)

    def unconfirmed(self) -> int:
        with self.cond:
            return len(self.updates)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[Sent]:
        """Messages and documents that went out, in order."""
        return [m for m in list(self.messages) if chat_id is None or m.chat_id == chat_id]

    # -- the server -------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                file_prefix = f"/file/bot{fake.token}/"
                if path.startswith(file_prefix):
                    self._file(path.removeprefix(file_prefix))
                    return
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                self._api(path, params, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                kind = self.headers.get("Content-Type", "")
                params, files = _parse_body(kind, body)
                self._api(unquote(urlsplit(self.path).path), params, files)

            def _file(self, path: str) -> None:
                for stored_path, data in fake.files.values():
                    if stored_path == path:
                        self._send(200, data, "application/octet-stream")
                        return
                self._send(404, b"Not Found", "text/plain")

            def _api(
                self, path: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]
            ) -> None:
                prefix = f"/bot{fake.token}/"
                if not path.startswith(prefix):
                    self._error(Failure(401, "Unauthorized"))
                    return
                method = path.removeprefix(prefix)
                fake.calls.append(Call(method, params, time.monotonic(), files))
                planned = fake.failures.get(method)
                if planned and planned[0].skip > 0:
                    planned[0].skip -= 1
                elif planned:
                    self._error(planned.pop(0))
                    return
                handler = getattr(fake, f"_api_{method}", None)
                if handler is None:
                    self._error(Failure(404, "Not Found"))
                    return
                outcome = handler(params)
                if isinstance(outcome, Failure):
                    self._error(outcome)
                else:
                    self._json(200, {"ok": True, "result": outcome})

            def _error(self, failure: Failure) -> None:
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": failure.status,
                    "description": failure.description,
                }
                if failure.retry_after is not None:
                    body["parameters"] = {"retry_after": failure.retry_after}
                self._json(failure.status, body)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, data: bytes, kind: str) -> None:
                # A long poll the client gave up on has nobody left to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        return Handler

    # -- the methods ------------------------------------------------------------------------

    def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            return Failure(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        with self.cond:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self.cond.wait_for(lambda: self.closed or bool(self.updates), timeout)
            return sorted(self.updates, key=lambda u: int(u["update_id"]))[:limit]

    def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        if params.get("drop_pending_updates") in ("true", True):
            with self.cond:
                self.updates.clear()
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates") in ("true", True):
            with self.cond:
                self.updates.clear()
        return True

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        url = self.webhook["url"] if self.webhook else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands[params.get("language_code") or ""] = json.loads(params["commands"])
        return True

    def _message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            **content,
        }

    def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        text = params.get("text") or ""
        if not text or len(text.encode("utf-16-le")) // 2 > 4096:
            return Failure(400, "Bad Request: message text is empty or too long")
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        content: dict[str, Any] = {"text": text}
        if markup and "inline_keyboard" in markup:
            content["reply_markup"] = markup
        message = self._message(int(params["chat_id"]), **content)
        self.messages.append(
            Sent(
                message["chat"]["id"],
                message["message_id"],
                time.monotonic(),
                text,
                markup,
                sent_markup=markup,
            )
        )
        return message

    def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        name, data = self.calls[-1].files.get("document", ("", b""))
        if not data:
            return Failure(400, "Bad Request: there is no document in the request")
        document = {"file_id": f"out-{len(data)}", "file_unique_id": "u", "file_name": name}
        message = self._message(int(params["chat_id"]), document=document)
        self.messages.append(
            Sent(
                message["chat"]["id"],
                message["message_id"],
                time.monotonic(),
                document=(name, data),
            )
        )
        return message

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        for sent in self.messages:
            if sent.chat_id == chat_id and sent.message_id == message_id:
                if markup == {"inline_keyboard": []}:
                    markup = None
                if sent.buttons == [] and markup is None:
                    return Failure(400, "Bad Request: message is not modified")
                sent.markup = markup
                content: dict[str, Any] = {"text": sent.text}
                if markup:
                    content["reply_markup"] = markup
                return self._message(chat_id, **content) | {"message_id": message_id}
        return Failure(400, "Bad Request: message to edit not found")

    def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            return Failure(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > CLOUD_DOWNLOAD_LIMIT:
            return Failure(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"unique-{file_id}",
            "file_size": len(data),
            "file_path": path,
        }


def _parse_body(kind: str, body: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    if kind.startswith("application/x-www-form-urlencoded"):
        return {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}, {}
    if kind.startswith("application/json"):
        return json.loads(body or b"{}"), {}
    if kind.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + body
        )
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                params[str(name)] = payload.decode()
        return params, files
    return {}, {}
