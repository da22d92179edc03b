"""Attachments on disk under generated names; the sender's file name is never a path."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from conversations.messages import Attachment

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
REF_PATTERN = re.compile(r"^\d{4}/\d{2}/[0-9a-f]{32}\.[a-z0-9]{1,5}$")


class TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"attachment larger than {limit} bytes")
        self.limit = limit


def sniff(head: bytes, declared: str) -> str:
    """The content type the bytes show, not the one the sender claims."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return "application/octet-stream"


def safe_filename(name: str) -> str:
    """A display name only: path parts, control characters and excess length removed."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name.strip()[:120] or "file"


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, ref: str) -> Path:
        if not REF_PATTERN.match(ref):
            raise ValueError("not an attachment reference")
        return self.root / ref

    async def save(
        self, chunks: AsyncIterator[bytes], *, declared_type: str, filename: str, max_bytes: int
    ) -> Attachment:
        """Write the stream under a new name; nothing is left behind if it is too large."""
        now = datetime.now(UTC)
        token = secrets.token_hex(16)
        folder = self.root / f"{now:%Y}" / f"{now:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{token}.part"
        size = 0
        head = b""
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(max_bytes)
                    if len(head) < 16:
                        head = (head + chunk)[:16]
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        content_type = sniff(head, declared_type)
        ext = EXTENSIONS.get(content_type, ".bin")
        ref = f"{now:%Y}/{now:%m}/{token}{ext}"
        partial.rename(self.root / ref)
        return Attachment(
            ref=ref, content_type=content_type, size=size, filename=safe_filename(filename)
        )

    async def save_bytes(
        self, data: bytes, *, declared_type: str, filename: str, max_bytes: int
    ) -> Attachment:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.save(
            one(), declared_type=declared_type, filename=filename, max_bytes=max_bytes
        )
