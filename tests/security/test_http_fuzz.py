"""Hostile HTTP over the whole application: every route, malformed bodies, wrong content
types, unknown fields, odd parameters. Never a 500; the JSON API always answers a 4xx with
{"error", "message"}. A fixed budget keeps it in CI."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

EXAMPLES = 400
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
KNOWN_FIELDS = ["text", "command", "lang", "file", "after", "email", "password", "csrf"]
FIELD_VALUES = st.one_of(
    st.sampled_from(["ar", "en", "fr", "start", "menu", "lang:en", "", "٢", "null", "0"]),
    st.text(max_size=40),
    st.integers(),
    st.text(min_size=4001, max_size=4100),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=zzz",
        "text/plain",
        "application/xml",
        "",
        "garbage/;;;",
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "fields", "bytes", "form", "multipart", "empty"]))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "fields":
        keys = st.one_of(st.sampled_from(KNOWN_FIELDS), st.text(max_size=10))
        return json.dumps(draw(st.dictionaries(keys, FIELD_VALUES, max_size=4))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "form":
        pairs = draw(st.lists(st.tuples(st.sampled_from(KNOWN_FIELDS), st.text(max_size=20))))
        return urlencode(pairs).encode()
    if kind == "multipart":
        name = draw(st.sampled_from(KNOWN_FIELDS))
        filename = draw(st.sampled_from(['"a.pdf"', '"../../x"', '""', "", '"\u0645.pdf"']))
        head = f'--zzz\r\nContent-Disposition: form-data; name="{name}"'
        if filename:
            head += f"; filename={filename}"
        payload = draw(st.binary(max_size=200))
        tail = draw(st.sampled_from([b"\r\n--zzz--\r\n", b"", b"\r\n--zz"]))
        return head.encode() + b"\r\n\r\n" + payload + tail
    return b""


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the application serves, included routers too."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):  # FastAPI's routes and plain ones
                methods = sorted((route.methods or set()) - {"HEAD"})
                found.extend((m, prefix + route.path) for m in methods)
            elif hasattr(route, "original_router"):  # how newer FastAPI keeps included routers
                walk(route.original_router.routes, prefix + route.include_context.prefix)

    walk(list(app.routes), "")
    return found


def fill(path: str, draw: Callable[[st.SearchStrategy[str]], str]) -> str:
    def one(_: re.Match[str]) -> str:
        value = draw(
            st.one_of(
                st.integers(-(2**63), 2**63).map(str),
                st.text(
                    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"),
                    min_size=1,
                    max_size=20,
                ),
                st.sampled_from(["0", "-1", "1", "REQ-1", "%00", "..", "\u0661"]),
            )
        )
        return quote(value, safe="")

    return re.sub(r"\{[^}]+\}", one, path)


async def test_no_route_ever_answers_500(app: FastAPI, http: httpx.AsyncClient) -> None:
    started = await http.post("/api/webchat/start", json={"lang": "ar"})
    assert started.status_code == 200
    good_cookie = http.cookies["tawasul_chat"]
    table = routes(app)
    assert ("POST", "/api/webchat/upload") in table and len(table) > 10
    loop = asyncio.get_running_loop()
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one_request(data: st.DataObject) -> None:
        method, template = data.draw(st.sampled_from(table))
        path = fill(template, data.draw)
        headers = {"content-type": data.draw(CONTENT_TYPES)}
        cookie = data.draw(st.sampled_from([good_cookie, None, "x" * 30, "bad cookie"]))
        if cookie:
            headers["cookie"] = f"tawasul_chat={cookie}"
        params: dict[str, Any] = data.draw(
            st.dictionaries(
                st.sampled_from(["after", "lang", "page", "q", "status"]),
                st.one_of(st.integers().map(str), st.text(max_size=10)),
                max_size=2,
            )
        )
        body = data.draw(bodies()) if method in ("POST", "PUT", "PATCH") else b""
        request = http.request(method, path, params=params, content=body, headers=headers)
        response = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        where = f"{method} {path} -> {response.status_code}: {response.text[:200]}"
        assert response.status_code < 500, where
        if template.startswith("/api/") and response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/json"), where
            answer = response.json()
            assert set(answer) == {"error", "message"} and answer["message"], where

    await asyncio.wait_for(asyncio.to_thread(one_request), timeout=120)
    assert any(400 <= status < 500 for status in seen)


async def test_oversized_bodies_get_413_on_every_post(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    big = b"{" + b" " * (26 * 1024 * 1024) + b"}"  # over the default 25 MB server limit
    for method, path in routes(app):
        if method != "POST":
            continue
        response = await http.post(path, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413, path
        assert set(response.json()) == {"error", "message"}


async def test_unknown_fields_are_refused_with_a_message(http: httpx.AsyncClient) -> None:
    await http.post("/api/webchat/start", json={"lang": "ar"})
    response = await http.post("/api/webchat/messages", json={"text": "hi", "admin": True})
    assert response.status_code == 422
    assert "admin" in response.json()["message"]
    response = await http.post("/api/webchat/start", json={"lang": "ar", "x": 1})
    assert response.status_code == 422
