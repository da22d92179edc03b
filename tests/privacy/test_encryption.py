"""Personal data at rest: the database's own bytes never hold a national ID, a phone number or
what a beneficiary wrote; lookups still find people; keys rotate; tampering is caught; a
production server without keys does not start."""

from __future__ import annotations

import secrets
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.service import Service
from conversations.messages import Channel, Inbound, Reply
from storage.crypto import Keyring, UndecryptableValue, generate_key, key_id
from storage.migrate import upgrade
from storage.models import Beneficiary, Identity, Message
from storage.rotation import encrypted_tables
from storage.staff_people import PeopleTx
from tests.conftest import (
    TEST_DATA_KEY,
    TEST_LOOKUP_KEY,
    WORKING_TIME,
    Chat,
    cli_env,
    make_config,
    run_cli,
    valid_national_id,
)
from tests.pg.fixtures import database_url, pg_cluster  # noqa: F401
from tests.privacy.conftest import phone_forms, secrets_in
from tests.test_engine import fill_support_request

NID = valid_national_id("119988776")
MOBILE = "+966551234567"
NAME = "محمد عبدالله القحطاني"
DESCRIPTION = "نحتاج مساعدة في دفع الإيجار المتأخر"
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


class Beneficiary1(Chat):
    """A chat whose channel message ids say nothing about the sender (as real channels' do)."""

    async def say(self, text: str = "", **kw: Any) -> list[Reply]:
        kw.setdefault("message_id", secrets.token_hex(8))
        return await super().say(text, **kw)


def forbidden() -> list[str]:
    return [NID, NID.translate(ARABIC), *phone_forms(MOBILE), NAME, DESCRIPTION]


async def converse(service: Service) -> str:
    """A support request over WhatsApp, its status asked from the web chat with the proof,
    and the same number vouched for by Telegram; returns the reference."""
    phone = Beneficiary1(service, channel=Channel.WHATSAPP, sender=MOBILE)
    reference = await fill_support_request(phone, nid=NID)
    stranger = Beneficiary1(service, channel=Channel.WEBCHAT, sender="session-" + "7" * 24)
    await stranger.say("مرحبا")
    await stranger.say("٣")
    await stranger.say(reference)
    await stranger.say(NID[-4:].translate(ARABIC))
    assert reference in stranger.text and "تم الاستلام" in stranger.text
    await service.handle(
        Inbound(
            Channel.TELEGRAM,
            "4242",
            text="مرحبا",
            channel_message_id=secrets.token_hex(8),
            received_at=WORKING_TIME,
            verified_phone=MOBILE,
        )
    )
    return reference


async def owners(service: Service) -> dict[str, int | None]:
    async with service.db.session(write=False) as s:
        found = {}
        for kind, address in (("phone", MOBILE), ("telegram", "4242")):
            found[address] = await s.scalar(
                select(Identity.beneficiary_id).where(Identity.lookup(kind, address))
            )
        return found


async def stored_text(url: str) -> list[str]:
    """Everything the database holds, as the database itself gives it (no decryption)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        path = Path(str(parsed.database))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        return [raw.decode("utf-8", errors="replace")]
    connection = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(False))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        rows = []
        for table in tables:
            rows += [r[0] for r in await connection.fetch(f'SELECT t::text FROM "{table[0]}" t')]
        return rows
    finally:
        await connection.close()


@pytest.fixture
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[Service]:  # noqa: F811
    svc = Service(make_config(tmp_path, database={"url": database_url}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()


async def test_the_stored_bytes_hold_no_personal_data_and_lookups_still_work(
    service: Service,
    database_url: str,  # noqa: F811
) -> None:
    await converse(service)
    found = await owners(service)
    assert found[MOBILE] is not None and found[MOBILE] == found["4242"]  # one person
    async with service.db.session(write=False) as s:
        person = await s.scalar(select(Beneficiary).where(Beneficiary.id == found[MOBILE]))
        assert person is not None and person.national_id == NID and person.phone == MOBILE
        said = [m.text for m in await s.scalars(select(Message))]
        assert DESCRIPTION in said
        export = await PeopleTx(s).export(found[MOBILE])
        assert export["beneficiary"]["national_id"] == NID
        assert "phone_hash" not in export["beneficiary"]
        assert {i["address"] for i in export["identities"]} == {MOBILE, "4242"}
        people = PeopleTx(s)
        assert [p.id for p in await people.find(national_id=NID)] == [found[MOBILE]]
        assert [p.id for p in await people.find(phone=MOBILE)] == [found[MOBILE]]
        assert await people.find(national_id=valid_national_id("119988775")) == []
    await service.db.dispose()
    stored = await stored_text(database_url)
    assert "enc1:" in "".join(stored)
    assert secrets_in(stored, forbidden()) == []


async def test_tampered_and_foreign_ciphertexts_fail_clearly(tmp_path: Path) -> None:
    keyring = Keyring([TEST_DATA_KEY], TEST_LOOKUP_KEY)
    sealed = keyring.encrypt(NID)
    assert keyring.decrypt(sealed) == NID and NID not in sealed
    assert keyring.encrypt(NID) != sealed  # a fresh nonce each time
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(UndecryptableValue, match="altered"):
        keyring.decrypt(flipped)
    stranger = Keyring([generate_key()], TEST_LOOKUP_KEY)
    with pytest.raises(UndecryptableValue, match=key_id_of(TEST_DATA_KEY)):
        stranger.decrypt(sealed)
    # And through the database: a message text altered in place.
    svc = Service(make_config(tmp_path))
    await upgrade(svc.db.engine)
    try:
        await Beneficiary1(svc, sender="u-tamper").say(DESCRIPTION)
        async with svc.db.session() as s:
            raw = await s.scalar(text("SELECT text FROM messages WHERE direction = 'in'"))
            assert isinstance(raw, str) and raw.startswith("enc1:")
            await s.execute(
                text("UPDATE messages SET text = :t WHERE direction = 'in'"),
                {"t": raw[:-3] + ("A" if raw[-3] != "A" else "B") + raw[-2:]},
            )
        with pytest.raises(UndecryptableValue, match="altered or damaged"):
            async with svc.db.session(write=False) as s:
                list(await s.scalars(select(Message.text).where(Message.direction == "in")))
    finally:
        await svc.close()


def key_id_of(key: str) -> str:
    import base64

    return key_id(base64.urlsafe_b64decode(key))


def refuse_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = cli_env(tmp)
    del env["TAWASUL_SECURITY_DATA_KEYS"], env["TAWASUL_SECURITY_LOOKUP_KEY"]
    return {**env, **extra}


def test_production_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    for extra in (
        {"TAWASUL_SECURITY_MODE": "production"},
        # PostgreSQL is production unless told otherwise; nothing is contacted.
        {"TAWASUL_DATABASE_URL": "postgresql+asyncpg://tawasul@127.0.0.1:9/tawasul"},
    ):
        result = run_cli(tmp_path, "serve", env=refuse_env(tmp_path, **extra), check=False)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "Error: no data key configured: in production mode Tawasul keeps personal data "
            "encrypted and does not start without its keys. Set TAWASUL_SECURITY_DATA_KEYS "
            "and TAWASUL_SECURITY_LOOKUP_KEY (make each with `tawasul keys generate`), or set "
            'security.mode = "demo" for a trial installation'
        ]
        assert not (tmp_path / "var").exists()  # nothing created before refusing
    production = refuse_env(tmp_path, TAWASUL_SECURITY_MODE="production")
    result = run_cli(tmp_path, "config", "check", env=production, check=False)
    assert result.returncode == 1 and "no data key configured" in result.stderr
    half = refuse_env(tmp_path, TAWASUL_SECURITY_DATA_KEYS=TEST_DATA_KEY)
    result = run_cli(tmp_path, "db", "upgrade", env=half, check=False)
    assert result.returncode == 1 and "security.lookup_key is empty" in result.stderr
    bad = refuse_env(
        tmp_path, TAWASUL_SECURITY_DATA_KEYS="short", TAWASUL_SECURITY_LOOKUP_KEY=TEST_LOOKUP_KEY
    )
    result = run_cli(tmp_path, "db", "upgrade", env=bad, check=False)
    assert result.returncode == 1 and "tawasul keys generate" in result.stderr


def test_the_demo_generates_a_private_key_once(tmp_path: Path) -> None:
    env = refuse_env(tmp_path, TAWASUL_DATABASE_URL="sqlite+aiosqlite:///var/tawasul.db")
    first = run_cli(tmp_path, "db", "upgrade", env=env)
    key_file = tmp_path / "var" / "tawasul.keys"
    assert "security.demo_keys_generated" in first.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    chatted = run_cli(tmp_path, "chat", "--json", input=f"{DESCRIPTION}\n", env=env)
    assert "security.demo_keys " in chatted.stderr or "security.demo_keys\x1b" in chatted.stderr
    # A one-off command does not repeat it: `serve`, `chat` and `config check` say it.
    listed = run_cli(tmp_path, "requests", "list", env=env)
    assert "demo_keys" not in listed.stderr and "tawasul.keys" not in listed.stderr
    checked = run_cli(tmp_path, "config", "check", env=env)
    assert "warning: security: the demo's keys in var/tawasul.keys are in use" in checked.stderr
    assert key_file.read_text() == content
    raw = (tmp_path / "var" / "tawasul.db").read_bytes()
    assert DESCRIPTION.encode() not in raw
    # Moving to real keys without the demo's: what to do, and where its key is, not a traceback.
    real = {
        **env,
        "TAWASUL_SECURITY_DATA_KEYS": generate_key(),
        "TAWASUL_SECURITY_LOOKUP_KEY": generate_key(),
    }
    generated = run_cli(tmp_path, "keys", "generate", env=env)
    assert "var/tawasul.keys holds the demo's keys" in generated.stderr
    rotated = run_cli(tmp_path, "keys", "rotate", env=real, check=False)
    assert rotated.returncode == 1 and "Traceback" not in rotated.stderr
    assert "That key is the demo's, kept in var/tawasul.keys" in rotated.stderr
    assert 'TAWASUL_SECURITY_DATA_KEYS="NEW,DEMO"' in rotated.stderr


async def test_rotation_moves_every_row_to_the_new_key(tmp_path: Path) -> None:
    """Old data under the test key; a new data key and a new lookup key come in; `keys
    rotate` moves everything; then the old keys go and everything still reads and matches."""
    svc = Service(make_config(tmp_path))
    await upgrade(svc.db.engine)
    try:
        reference = await converse(svc)
        before = await owners(svc)
        async with svc.db.session(write=False) as s:
            people = await s.scalar(select(func.count()).select_from(Beneficiary))
    finally:
        await svc.close()
    new_data, new_lookup = generate_key(), generate_key()
    rotating = cli_env(
        tmp_path,
        TAWASUL_SECURITY_DATA_KEYS=f"{new_data},{TEST_DATA_KEY}",
        TAWASUL_SECURITY_LOOKUP_KEY=new_lookup,
    )
    first = run_cli(tmp_path, "keys", "rotate", "--batch-size", "7", env=rotating)
    assert "messages: 7/" in first.stderr  # progress, batch by batch
    assert int(first.stdout.split()[1]) > 20
    again = run_cli(tmp_path, "keys", "rotate", env=rotating)
    assert again.stdout.startswith("Rewrote 0 rows")  # nothing left to do
    new_id = key_id_of(new_data)
    values = await raw_encrypted_values(tmp_path)
    assert values and all(v.startswith(f"enc1:{new_id}:") for v in values)

    after = make_config(tmp_path, security={"data_keys": new_data, "lookup_key": new_lookup})
    svc = Service(after)
    try:
        assert await owners(svc) == before
        # The returning beneficiary is recognised by the new hash and proves the request.
        phone = Beneficiary1(svc, channel=Channel.WHATSAPP, sender=MOBILE)
        await phone.say("القائمة")
        await phone.say("٣")
        assert reference in phone.text
        async with svc.db.session(write=False) as s:
            assert await s.scalar(select(func.count()).select_from(Beneficiary)) == people
            texts = [m.text for m in await s.scalars(select(Message))]
            assert DESCRIPTION in texts
    finally:
        await svc.close()


async def raw_encrypted_values(tmp: Path) -> list[str]:
    """Every non-empty stored value of every encrypted column of the SQLite test database."""
    from storage.crypto import EncryptedType

    svc = Service(make_config(tmp))
    values: list[str] = []
    try:
        async with svc.db.session(write=False) as s:
            for table in encrypted_tables():
                names = [c.name for c in table.columns if isinstance(c.type, EncryptedType)]
                for name in names:
                    rows = await s.execute(text(f'SELECT "{name}" FROM "{table.name}"'))
                    values += [v for (v,) in rows if v]
    finally:
        await svc.close()
    return values


async def test_a_plaintext_database_is_read_then_encrypted_by_rotate(tmp_path: Path) -> None:
    """Rows written before encryption (clear values, no hashes) are read and found as they
    are; `keys rotate` encrypts and hashes them."""
    svc = Service(make_config(tmp_path))
    await upgrade(svc.db.engine)
    created = WORKING_TIME - timedelta(days=3)
    try:
        async with svc.db.session() as s:
            await s.execute(
                text(
                    "INSERT INTO beneficiaries (id, created_at, display_name, phone, national_id)"
                    " VALUES (1, :at, :name, :phone, :nid)"
                ),
                {"at": created, "name": NAME, "phone": MOBILE, "nid": NID},
            )
            await s.execute(
                text(
                    "INSERT INTO identities (id, beneficiary_id, kind, address, created_at,"
                    " unreachable, opted_out) VALUES (1, 1, 'phone', :phone, :at, 0, 0)"
                ),
                {"at": created, "phone": MOBILE},
            )
            await s.execute(
                text(
                    "INSERT INTO conversations (id, beneficiary_id, status, state, created_at,"
                    " updated_at) VALUES (1, 1, 'closed', '{\"lang\": \"ar\"}', :at, :at)"
                ),
                {"at": created},
            )
            await s.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, beneficiary_id, identity_id,"
                    " direction, channel, channel_message_id, author, text, payload, created_at)"
                    " VALUES (1, 1, 1, 1, 'in', 'whatsapp', 'SM1', 'beneficiary', :t, '{}', :at)"
                ),
                {"t": DESCRIPTION, "at": created},
            )
        # Read as they are, and found by the clear address: no second beneficiary.
        await Beneficiary1(svc, channel=Channel.WHATSAPP, sender=MOBILE).say("مرحبا")
        async with svc.db.session(write=False) as s:
            assert await s.scalar(select(func.count()).select_from(Beneficiary)) == 1
            person = await s.get(Beneficiary, 1)
            assert person is not None and person.national_id == NID
            first = await s.get(Message, 1)
            assert first is not None and first.text == DESCRIPTION
            assert [p.id for p in await PeopleTx(s).find(national_id=NID)] == [1]
    finally:
        await svc.close()
    assert DESCRIPTION.encode() in (tmp_path / "tawasul.db").read_bytes()
    result = run_cli(tmp_path, "keys", "rotate")
    assert "beneficiaries: 1/1 rows checked, 1 rewritten" in result.stderr
    values = await raw_encrypted_values(tmp_path)
    assert values and all(v.startswith("enc1:") for v in values)
    await assert_found_by_hash(tmp_path)
    # And back to clear values, as before going back to an older version.
    run_cli(tmp_path, "keys", "rotate", "--decrypt")
    values = await raw_encrypted_values(tmp_path)
    assert DESCRIPTION in values and not any(v.startswith("enc1:") for v in values)


async def assert_found_by_hash(tmp: Path) -> None:
    svc = Service(make_config(tmp))
    try:
        async with svc.db.session() as s:
            hashes = (
                await s.execute(text("SELECT phone_hash, national_id_hash FROM beneficiaries"))
            ).one()
            keyring = Keyring([TEST_DATA_KEY], TEST_LOOKUP_KEY)
            assert tuple(hashes) == (keyring.blind(MOBILE), keyring.blind(NID))
            identity = await s.scalar(select(Identity).where(Identity.address_hash == MOBILE))
            assert identity is not None and identity.address == MOBILE
    finally:
        await svc.close()
    raw = b"".join(p.read_bytes() for p in tmp.glob("tawasul.db*"))
    assert DESCRIPTION.encode() not in raw and NID.encode() not in raw


async def test_unanswered_questions_are_searched_after_decryption(service: Service) -> None:
    from bot.kb_edit import misses

    async with service.db.session() as s:
        for question in ("متى يفتح المستودع", "كم مبلغ الإيجار", "متى موعد التوزيع"):
            await PeopleTx(s).record_unanswered(question, "ar")
    found = await misses(service.db, search="متى")
    assert [m.text for m in found] == ["متى موعد التوزيع", "متى يفتح المستودع"]
    assert [m.text for m in await misses(service.db, limit=1)] == ["متى موعد التوزيع"]
    assert await misses(service.db, search="غير موجود") == []
