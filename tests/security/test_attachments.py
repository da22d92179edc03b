"""Archives and executables dressed up as PDFs are refused on the web-chat upload."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from bot.service import Service

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("invoice.pdf.exe", b"MZ" + b"\0" * 100)
    return buffer.getvalue()


DISGUISED = {
    "zip": _zip(),
    "exe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 200,
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\0" * 200,
    "rar": b"Rar!\x1a\x07\x01\x00" + b"\0" * 100,
    "7z": b"7z\xbc\xaf\x27\x1c" + b"\0" * 100,
    "gzip": b"\x1f\x8b\x08\x00" + b"\0" * 100,
    "script": b"#!/bin/sh\nrm -rf /\n",
    "html": b"<html><script>alert(1)</script></html>",
    "pdf_after_junk": b"MZ" + PDF,
}


@pytest.mark.parametrize("kind", sorted(DISGUISED))
async def test_disguised_files_are_refused(
    http: httpx.AsyncClient, service: Service, kind: str
) -> None:
    await http.post("/api/webchat/start", json={"lang": "ar"})
    response = await http.post(
        "/api/webchat/upload",
        files={"file": ("report.pdf", DISGUISED[kind], "application/pdf")},
    )
    assert response.status_code == 415, response.text
    answer = response.json()
    assert answer["error"] == "unsupported_type" and "PDF" in answer["message"]
    kept = [p for p in Path(service.config.storage.attachments_dir).rglob("*") if p.is_file()]
    assert kept == []


async def test_a_real_pdf_is_accepted(http: httpx.AsyncClient) -> None:
    await http.post("/api/webchat/start", json={"lang": "ar"})
    response = await http.post(
        "/api/webchat/upload", files={"file": ("../../etc/passwd", PDF, "application/zip")}
    )
    assert response.status_code == 200, response.text
