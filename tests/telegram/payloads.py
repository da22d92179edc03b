"""Bot API update payloads as Telegram sends them (recorded shapes, our own values)."""

from __future__ import annotations

import itertools
import time
from typing import Any

_message_ids = itertools.count(1)


def user(user_id: int, *, first_name: str = "سارة", language_code: str = "ar") -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": first_name,
        "last_name": "العتيبي",
        "language_code": language_code,
    }


def private_chat(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": "سارة", "last_name": "العتيبي"}


def message(user_id: int, update_id: int | None = None, **content: Any) -> dict[str, Any]:
    """A message update from a private chat; ``content`` is text, document, photo..."""
    update: dict[str, Any] = {
        "message": {
            "message_id": next(_message_ids),
            "from": user(user_id),
            "chat": private_chat(user_id),
            "date": int(time.time()),
            **content,
        }
    }
    if update_id is not None:
        update["update_id"] = update_id
    return update


def text(user_id: int, body: str, update_id: int | None = None) -> dict[str, Any]:
    entities = []
    if body.startswith("/"):
        entities = [{"type": "bot_command", "offset": 0, "length": len(body.split()[0])}]
    content: dict[str, Any] = {"text": body}
    if entities:
        content["entities"] = entities
    return message(user_id, update_id, **content)


def document(
    user_id: int, file_id: str, *, name: str, mime: str, size: int | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "file_id": file_id,
        "file_unique_id": f"u-{file_id}",
        "file_name": name,
        "mime_type": mime,
    }
    if size is not None:
        doc["file_size"] = size
    return message(user_id, document=doc)


def photo(user_id: int, file_id: str, size: int) -> dict[str, Any]:
    sizes = [
        {"file_id": f"{file_id}-s", "file_unique_id": "s", "width": 90, "height": 60},
        {
            "file_id": file_id,
            "file_unique_id": "m",
            "width": 1280,
            "height": 853,
            "file_size": size,
        },
    ]
    return message(user_id, photo=sizes, caption="صورة الهوية")


def voice(user_id: int) -> dict[str, Any]:
    return message(
        user_id,
        voice={
            "file_id": "voice-1",
            "file_unique_id": "v1",
            "duration": 4,
            "mime_type": "audio/ogg",
            "file_size": 9000,
        },
    )


def sticker(user_id: int) -> dict[str, Any]:
    return message(
        user_id,
        sticker={
            "file_id": "sticker-1",
            "file_unique_id": "st1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        },
    )


def location(user_id: int) -> dict[str, Any]:
    return message(user_id, location={"latitude": 24.7136, "longitude": 46.6753})


def contact(user_id: int, phone: str, *, owner: int | None) -> dict[str, Any]:
    card: dict[str, Any] = {"phone_number": phone, "first_name": "سارة"}
    if owner is not None:
        card["user_id"] = owner
    return message(user_id, contact=card)


def edited(user_id: int, body: str) -> dict[str, Any]:
    return {
        "edited_message": {
            "message_id": next(_message_ids),
            "from": user(user_id),
            "chat": private_chat(user_id),
            "date": int(time.time()) - 60,
            "edit_date": int(time.time()),
            "text": body,
        }
    }


def group_text(user_id: int, group_id: int, body: str) -> dict[str, Any]:
    return {
        "message": {
            "message_id": next(_message_ids),
            "from": user(user_id),
            "chat": {"id": group_id, "type": "supergroup", "title": "موظفو الجمعية"},
            "date": int(time.time()),
            "text": body,
        }
    }


def callback(user_id: int, pressed: dict[str, Any], data: str) -> dict[str, Any]:
    """A press on an inline button of ``pressed`` (a message the bot sent)."""
    return {
        "callback_query": {
            "id": f"cq-{next(_message_ids)}",
            "from": user(user_id),
            "chat_instance": "-4242",
            "message": pressed,
            "data": data,
        }
    }
