"""Photos reach staff without the sender's metadata; broken images and decompression
bombs are refused with a clear answer, and nothing else of the message is lost."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.files import AttachmentStore, UnreadableImage
from storage.models import Message
from tests.conftest import WORKING_TIME
from tests.email.conftest import Beneficiary, RunningBot, text_of
from tests.security.images import TRACES, metadata_of, photo
from tests.telegram.conftest import Running, TelegramUser
from tests.telegram.fake_bot_api import FakeBotAPI
from tests.twilio.conftest import Phone, TwilioSetup

MB = 1024 * 1024


def kept_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
async def test_stored_photos_carry_no_exif_gps_xmp_or_comment(
    tmp_path: Path, fmt: str, content_type: str
) -> None:
    original = photo(fmt)
    assert "gps" in metadata_of(original)  # the test photo really carries a position
    store = AttachmentStore(tmp_path)
    attachment = await store.save_bytes(
        original, declared_type="application/pdf", filename="IMG_0042.jpg", max_bytes=MB
    )
    assert attachment.content_type == content_type
    kept = store.path(attachment.ref).read_bytes()
    assert attachment.size == len(kept)
    assert metadata_of(kept) == {}
    for trace in TRACES:
        assert trace not in kept, trace
    with Image.open(io.BytesIO(kept)) as image:
        assert image.size == (120, 80)
        assert image.getpixel((10, 40))[2] > 150  # the left half is still blue
    assert kept_files(tmp_path) == [store.path(attachment.ref)]  # no partial file left


async def test_a_sideways_photo_is_turned_upright_before_its_orientation_tag_goes(
    tmp_path: Path,
) -> None:
    store = AttachmentStore(tmp_path)
    attachment = await store.save_bytes(
        photo(orientation=6), declared_type="image/jpeg", filename="a.jpg", max_bytes=MB
    )
    with Image.open(store.path(attachment.ref)) as image:
        assert image.size == (80, 120)  # rotated as the camera said
        assert not image.getexif()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG of ``width`` x ``height`` black pixels: a few kilobytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" + b"\0" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


async def test_a_decompression_bomb_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    bomb = png_bomb(20_000, 20_000)  # 400 megapixels
    assert len(bomb) < 100_000
    store = AttachmentStore(tmp_path)
    with pytest.raises(UnreadableImage):
        await store.save_bytes(bomb, declared_type="image/png", filename="a.png", max_bytes=MB)
    assert kept_files(tmp_path) == []
    # The same kind of file at a reasonable size is fine: the limit is on pixels.
    small = await store.save_bytes(
        png_bomb(400, 300), declared_type="image/png", filename="b.png", max_bytes=MB
    )
    assert small.content_type == "image/png"


@pytest.mark.parametrize(
    "broken",
    [
        photo()[:300],  # cut short in the middle
        b"\xff\xd8\xff\xe0" + bytes(500),  # a JPEG header and nothing behind it
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,
        b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(40),
    ],
)
async def test_a_broken_image_raises_and_leaves_nothing(tmp_path: Path, broken: bytes) -> None:
    store = AttachmentStore(tmp_path)
    with pytest.raises(UnreadableImage):
        await store.save_bytes(broken, declared_type="", filename="x.jpg", max_bytes=MB)
    assert kept_files(tmp_path) == []


async def test_pdfs_are_kept_byte_for_byte(tmp_path: Path) -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<</Author (someone)>>endobj\ntrailer<<>>\n%%EOF\n"
    store = AttachmentStore(tmp_path)
    attachment = await store.save_bytes(pdf, declared_type="", filename="a.pdf", max_bytes=MB)
    assert store.path(attachment.ref).read_bytes() == pdf


async def test_the_web_chat_refuses_a_broken_photo_with_a_clear_message(
    http: httpx.AsyncClient, service: Service
) -> None:
    await http.post("/api/webchat/start", json={"lang": "ar"})
    response = await http.post(
        "/api/webchat/upload", files={"file": ("id.jpg", photo()[:400], "image/jpeg")}
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "unreadable_image"
    assert service.catalog.text("en", "attachment.unreadable") in answer["message"]
    assert kept_files(Path(service.config.storage.attachments_dir)) == []
    # The conversation carries on: the next message is answered as usual.
    sent = await http.post("/api/webchat/messages", json={"text": "مرحبا"})
    assert sent.status_code == 200 and sent.json()["messages"]
    # And a good photo goes through, cleaned.
    response = await http.post(
        "/api/webchat/upload", files={"file": ("id.jpg", photo(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    (path,) = kept_files(Path(service.config.storage.attachments_dir))
    assert metadata_of(path.read_bytes()) == {}


async def test_stored_messages_point_to_the_clean_copy(service: Service) -> None:
    attachment = await service.files.save_bytes(
        photo(), declared_type="image/jpeg", filename="IMG.jpg", max_bytes=MB
    )
    await service.handle(
        Inbound(
            Channel.WEBCHAT,
            "photo-session-000000000",
            attachments=(attachment,),
            channel_message_id="p-1",
            received_at=WORKING_TIME,
        )
    )
    async with service.db.session(write=False) as session:
        payloads = list(
            await session.scalars(select(Message.payload).where(Message.direction == "in"))
        )
    (stored,) = [a for p in payloads for a in (p or {}).get("attachments", [])]
    assert stored["ref"] == attachment.ref and stored["size"] == attachment.size
    assert metadata_of(service.files.path(attachment.ref).read_bytes()) == {}


async def test_whatsapp_broken_photo_is_refused_and_the_rest_kept(
    twilio_setup: TwilioSetup,
) -> None:
    fake = twilio_setup.fake
    broken = fake.add_media(photo()[:500], "image/jpeg")
    good = fake.add_media(photo(), "image/jpeg")
    phone = Phone(twilio_setup, "+966501234567")
    await phone.say("هذه صورة الهوية", media=[(broken, "image/jpeg"), (good, "image/jpeg")])
    catalog = twilio_setup.service.catalog
    assert catalog.text("ar", "attachment.unreadable") in phone.text
    async with twilio_setup.service.db.session(write=False) as session:
        (payload,) = list(
            await session.scalars(select(Message.payload).where(Message.direction == "in"))
        )
        (text,) = list(await session.scalars(select(Message.text).where(Message.direction == "in")))
    assert text == "هذه صورة الهوية"  # the words are kept
    (kept,) = payload["attachments"]  # and the good photo, cleaned
    assert metadata_of(twilio_setup.service.files.path(kept["ref"]).read_bytes()) == {}


async def test_telegram_broken_photo_gets_the_clear_answer_and_a_good_one_is_cleaned(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    await user.say("/start")
    await user.upload(photo()[:600], name="IMG_1.jpg", mime="image/jpeg", file_id="broken")
    assert user.text == tg_service.catalog.text("ar", "attachment.unreadable")
    await user.upload(photo(), name="IMG_2.jpg", mime="image/jpeg", file_id="good")
    (kept,) = kept_files(Path(tg_service.config.storage.attachments_dir))
    assert metadata_of(kept.read_bytes()) == {}


async def test_email_broken_photo_is_named_and_the_mail_and_other_files_kept(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    _, person = running
    msg = EmailMessage()
    msg["From"] = person.address
    msg["To"] = person.bot
    msg["Subject"] = "صورة الهوية"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="mail.example.test")
    msg.set_content("أرفقت صورة الهوية")
    msg.add_attachment(photo()[:700], maintype="image", subtype="jpeg", filename="IMG_1.jpg")
    msg.add_attachment(photo(), maintype="image", subtype="jpeg", filename="IMG_2.jpg")
    await person.send(msg.as_bytes(policy=SMTP))
    answers = await person.answers()
    unreadable = person.service.catalog.text("ar", "attachment.unreadable")
    assert any(unreadable in text_of(mail) for mail in answers)
    assert await person.stored_texts() == ["أرفقت صورة الهوية"]
    (kept,) = kept_files(Path(person.service.config.storage.attachments_dir))
    assert metadata_of(kept.read_bytes()) == {}
