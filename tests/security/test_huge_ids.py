"""A number too large for the database in a URL, a query or a form is refused (4xx), never
handed to the database driver, which fails on it with a 500: every route is walked with
such a number in each of its whole-number parameters, signed in and with a web-chat session."""

from __future__ import annotations

import asyncio
import types
import typing
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from bot.app import create_app
from bot.service import Service
from tests.staff.conftest import Browser, console_service, seed_dir  # noqa: F401

HUGE = "99999999999999999999999"
# staff/routes_requests.py is another helper's to change (its message_id, index and
# document_id are plain ints); these may still answer 500 until it bounds them.


def is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return int in typing.get_args(annotation)
    return False


def int_params(route: Route) -> tuple[list[str], list[str], list[str]]:
    """The names of the route's whole-number parameters: in its path, query and form."""
    if not isinstance(route, APIRoute):
        return [], [], []
    dependant = route.dependant

    def names(fields: list[Any]) -> list[str]:
        return [f.alias for f in fields if is_int(f.field_info.annotation)]

    return (
        names(dependant.path_params),
        names(dependant.query_params),
        names(dependant.body_params),
    )


def walk(app: FastAPI) -> list[tuple[str, str, Route]]:
    found: list[tuple[str, str, Route]] = []

    def one(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    found.append((method, prefix + route.path, route))
            elif hasattr(route, "original_router"):
                one(route.original_router.routes, prefix + route.include_context.prefix)

    one(list(app.routes), "")
    return found


async def test_no_route_answers_500_for_a_number_too_large(
    console_service: Service,  # noqa: F811
) -> None:
    app = create_app(console_service, workers=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        admin = Browser(client, console_service)
        await admin.sign_in("admin")
        assert (await client.post("/api/webchat/start", json={"lang": "ar"})).status_code == 200
        table = walk(app)
        with_numbers = [(m, p, r) for m, p, r in table if any(int_params(r))]
        assert ("GET", "/api/webchat/messages") in {(m, p) for m, p, _ in with_numbers}
        assert len(with_numbers) >= 20
        answers: dict[tuple[str, str], int] = {}
        for method, template, route in with_numbers:
            in_path, in_query, in_form = int_params(route)
            path = template
            for name in route.param_convertors:
                path = path.replace("{" + name + "}", HUGE if name in in_path else "1")
            form: dict[str, str] = dict.fromkeys(in_form, HUGE)
            if method == "POST":
                form["csrf"] = admin.csrf
            response = await asyncio.wait_for(
                client.request(
                    method,
                    path,
                    params=dict.fromkeys(in_query, HUGE),
                    data=form if method == "POST" else None,
                ),
                timeout=20,
            )
            answers[(method, template)] = response.status_code
    assert set(answers.values()) <= {404, 422}, answers


async def test_the_web_chat_cursor_is_bounded(console_service: Service) -> None:  # noqa: F811
    app = create_app(console_service, workers=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/api/webchat/start", json={"lang": "ar"})).status_code == 200
        for after in (HUGE, str(2**63), "-" + HUGE):
            response = await client.get("/api/webchat/messages", params={"after": after})
            assert response.status_code == 422, (after, response.text)
            assert response.json()["error"] == "invalid_request"
        for after in (str(2**63 - 1), "-5"):  # the ends of the range; negative reads from 0
            answer = await client.get("/api/webchat/messages", params={"after": after})
            assert answer.status_code == 200, after
