"""The console's lists, search and per-staff figures over PostgreSQL: the ordering, the
keyed-hash lookups and the counts are built in SQL, which the two databases must agree on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import Request
from storage.staff import ConsoleTx
from tests.conftest import Chat, make_config, valid_national_id
from tests.staff.conftest import SECRET
from tests.staff.test_reports import (
    test_replies_and_closures_count_for_whoever_made_them,  # noqa: F401
)
from tests.test_engine import fill_support_request


@pytest.fixture
async def console_service(tmp_path: Path, pg_url: str) -> AsyncIterator[Service]:
    svc = Service(make_config(tmp_path, database={"url": pg_url}, staff={"secret_key": SECRET}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()


async def test_requests_list_and_search(console_service: Service) -> None:
    reference = await fill_support_request(
        Chat(console_service, Channel.WEBCHAT, sender="web-session-applicant-0001")
    )
    now = datetime.now(UTC)
    async with console_service.db.session() as session:
        mine = await session.scalar(select(Request).where(Request.reference == reference))
        assert mine is not None
        row = {
            "beneficiary_id": mine.beneficiary_id,
            "form_id": "support",
            "kind": "support",
            "lang": "ar",
            "channel": "webchat",
            "submitted_at": now - timedelta(days=400),
        }
        await session.execute(
            insert(Request),
            [
                {**row, "reference": f"SR-1447-{n:05d}", "status": "closed", "due_at": due}
                for n, due in ((1, now - timedelta(days=300)), (2, None))
            ]
            + [{**row, "reference": "SR-1448-00099", "status": "submitted", "due_at": now}],
        )
    async with console_service.db.session(write=False) as session:
        tx = ConsoleTx(session)
        listed = await tx.request_list(None, now + timedelta(minutes=1), per_page=3)
        assert [r.request.reference for r in listed.rows] == [
            "SR-1448-00099",
            "SR-1447-00001",
            reference,
        ]
        assert (listed.total, listed.pages, listed.rows[0].late) == (4, 2, True)
        rest = await tx.request_list(None, now, page=2, per_page=3)
        assert [r.request.reference for r in rest.rows] == ["SR-1447-00002"]
        for query in (reference.lower(), "القحطانى", valid_national_id(), "0551234567"):
            found = await tx.search(query)
            assert [p.id for p in found.people] == [mine.beneficiary_id], query
        assert (await tx.search(valid_national_id("119988775"))).people == []
