"""Attachments on disk under generated names; the sender's file name is never a path.

Photos are decoded and written again before they are kept, so what staff open carries no
EXIF (GPS position, camera, time), XMP or comment from the sender's phone, and a file that
only looks like an image never reaches them. PDFs are kept as they are.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageOps

from conversations.messages import Attachment
from storage.private import create_private, private_file, private_folder

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
# The image types that are decoded and written again, and Pillow's name for each.
CLEANED_IMAGES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# A phone photo is 12 to 50 megapixels; a small file claiming far more is a decompression
# bomb (a few kilobytes that would take gigabytes to open).
MAX_IMAGE_PIXELS = 64_000_000
JPEG_QUALITY = 90
REF_PATTERN = re.compile(r"^\d{4}/\d{2}/[0-9a-f]{32}\.[a-z0-9]{1,5}$")


class TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"attachment larger than {limit} bytes")
        self.limit = limit


class UnreadableImage(ValueError):
    """The bytes start like an image but do not open as one, or would be too big to open."""


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


def _open_checked(source: Path, fmt: str, max_pixels: int) -> Image.Image:
    image = Image.open(source, formats=[fmt])
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UnreadableImage(f"{width}x{height} pixels is over the limit")
    image.load()
    return image


def clean_image(source: Path, target: Path, content_type: str, *, max_pixels: int) -> None:
    """Decode ``source`` and write its pixels alone to ``target``: no EXIF, XMP or comment.

    The photo is first turned the way its EXIF orientation says, so removing that tag does
    not leave it sideways. Only the colour profile is carried over. Raises UnreadableImage.
    """
    fmt = CLEANED_IMAGES[content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open_checked(source, fmt, max_pixels) as image:
                icc = image.info.get("icc_profile")
                upright = ImageOps.exif_transpose(image)
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(type(exc).__name__) from None
    except Image.DecompressionBombError:
        raise UnreadableImage("decompression bomb") from None
    if "transparency" in upright.info or (fmt == "WEBP" and upright.mode not in ("RGB", "RGBA")):
        upright = upright.convert("RGBA")
    if fmt == "JPEG" and upright.mode not in ("L", "RGB", "CMYK"):
        upright = upright.convert("RGB")
    # A new image from the pixels only: nothing of the original's metadata can follow.
    bare = Image.frombytes(upright.mode, upright.size, upright.tobytes())
    if upright.mode == "P":
        palette = upright.getpalette()
        if palette is not None:
            bare.putpalette(palette)
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = JPEG_QUALITY
    bare.save(target, fmt, **options)


class AttachmentStore:
    def __init__(self, root: Path, *, max_image_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.root = root
        self.max_image_pixels = max_image_pixels

    def path(self, ref: str) -> Path:
        if not REF_PATTERN.match(ref):
            raise ValueError("not an attachment reference")
        return self.root / ref

    async def save(
        self, chunks: AsyncIterator[bytes], *, declared_type: str, filename: str, max_bytes: int
    ) -> Attachment:
        """Write the stream under a new name; nothing is left behind if it is too large.

        Images are kept as a clean copy (see ``clean_image``); one that does not open raises
        UnreadableImage and nothing is kept.
        """
        now = datetime.now(UTC)
        token = secrets.token_hex(16)
        folder = self.root / f"{now:%Y}" / f"{now:%m}"
        private_folder(folder)
        partial = folder / f"{token}.part"
        size = 0
        head = b""
        try:
            create_private(partial)
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
        if content_type in CLEANED_IMAGES:
            cleaned = folder / f"{token}.clean"
            try:
                await asyncio.to_thread(
                    clean_image,
                    partial,
                    cleaned,
                    content_type,
                    max_pixels=self.max_image_pixels,
                )
                size = cleaned.stat().st_size
                private_file(cleaned)
                cleaned.rename(self.root / ref)
            except BaseException:
                cleaned.unlink(missing_ok=True)
                raise
            finally:
                partial.unlink(missing_ok=True)
        else:
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
