"""What every console page shares: who is signed in, CSRF, the templates, the errors."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

from conversations.fields import to_hijri
from conversations.forms import FieldType, FormField
from conversations.messages import shown_address
from staff.backend import Backend
from staff.i18n import Translator, translator
from staff.permissions import Perm, Role, Staff, can
from staff.security import Keys, token_hash
from storage.staff import ConsoleTx, HistoryEvent

# Query parameters that carry a one-time notice after an action.
NOTICES = frozenset({"done", "error"})

log = structlog.get_logger("tawasul.staff")

TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "tawasul_staff"
PRELOGIN_COOKIE = "tawasul_staff_pre"
LANG_COOKIE = "tawasul_staff_lang"
PREFIX = "/staff"
SCOPE_KEY = "tawasul.staff_console"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    pass


class Denied(Exception):
    """Signed in, but this role may not do this (403)."""


class BadForm(Exception):
    """A POST without the right CSRF token (403)."""


class Missing(Exception):
    pass


def _ltr(text: str) -> str:
    return f"\u2066{text}\u2069"


# How long the console trusts its copy of the staff members' names (the command line may
# rename someone from another process).
NAMES_SECONDS = 15.0


def staff_name(names: dict[str, str], who: str) -> str:
    """A staff member's name for a sentence (the address, left to right, without one)."""
    email = who.removeprefix("staff:")
    return names.get(email.lower()) or _ltr(email)


def person_label(names: dict[str, str], who: str | None) -> Markup:
    """A staff member as colleagues know them: the name, with the address on hover; the
    address alone (kept left to right) for an account without a name or since removed."""
    if not who:
        return Markup("—")
    email = who.removeprefix("staff:")
    name = names.get(email.lower())
    if name:
        return Markup('<bdi title="{}">{}</bdi>').format(email, name)
    return Markup('<bdi dir="ltr">{}</bdi>').format(email)


def actor_label(names: dict[str, str], actor: str, t: Translator) -> Markup:
    """Who did it: a staff member, or the beneficiary, the system, the shell."""
    if actor.startswith("staff:"):
        return person_label(names, actor)
    return escape(t.maybe("actor", actor))


def minutes_label(value: float | None, t: Translator) -> str:
    if value is None:
        return "—"
    if value < 1:
        return t("reports.under_a_minute")
    return t("reports.minutes", n=f"{value:g}")


def route_class(console: Console) -> type[APIRoute]:
    """Routes that turn the console's refusals into pages (the app's JSON errors stay for the
    API) and carry the console's security headers."""

    class ConsoleRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                request.scope[SCOPE_KEY] = console
                try:
                    response = await handler(request)
                except LoginRequired:
                    response = _login_redirect(request)
                except Denied:
                    response = await console.error(request, 403, "errors.forbidden")
                except BadForm:
                    response = await console.error(request, 403, "errors.csrf")
                except Missing:
                    response = await console.error(request, 404, "errors.not_found")
                except RequestValidationError:
                    # A number that is none in the address, a reply longer than allowed: the
                    # console's own page, not the API's JSON.
                    if await console.who(request) is None:
                        response = _login_redirect(request)
                    else:
                        response = await console.error(request, 422, "errors.invalid")
                for name, value in SECURITY_HEADERS.items():
                    response.headers.setdefault(name, value)
                return response

            return route

    return ConsoleRoute


def _login_redirect(request: Request) -> Response:
    """To the sign-in form, and back to the page afterwards. A form posted after the session
    ended comes back to the page it was on (the Referer), not to the action's address: what
    was typed in it is kept by the browser (staff.js) and put back there."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return HTMLResponse("login required", status_code=401)
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        target = _page_before(request)
    query = {"next": safe_next(target)}
    if request.cookies.get(SESSION_COOKIE):
        query["expired"] = "1"
    return RedirectResponse(f"{PREFIX}/login?{urlencode(query, safe='/')}", status_code=303)


def _page_before(request: Request) -> str:
    """The console page a form was posted from: the Referer on this site, else the action's
    address without its last part (/conversations/5/reply -> /conversations/5)."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith(f"{PREFIX}/"):
        # Without a one-time notice (?done=, ?error=) of the page's last action.
        kept = [(k, v) for k, v in parse_qsl(referer.query) if k not in NOTICES]
        return referer.path + (f"?{urlencode(kept)}" if kept else "")
    return request.url.path.rsplit("/", 1)[0]


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site after login."""
    if target and target.startswith(f"{PREFIX}/") and "\\" not in target and "//" not in target:
        return target
    return f"{PREFIX}/"


class Console:
    def __init__(self, backend: Backend, *, poll_seconds: float = 1.0) -> None:
        self.backend = backend
        self.db = backend.db
        self.keys = Keys(backend.config.staff.secret_key, backend.db)
        self.zone = ZoneInfo(backend.config.hours.timezone)
        self.poll_seconds = poll_seconds
        self.names: dict[str, str] = {}
        self._names_until = 0.0
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = self.when
        self.env.filters["day"] = self.day
        self.env.filters["size"] = self.size
        self.env.filters["ltr"] = _ltr
        self.env.globals["can"] = can
        self.env.globals["form_title"] = self.form_title
        self.env.globals["actor"] = lambda who, t: actor_label(self.names, who, t)
        self.env.globals["colleague"] = lambda who: person_label(self.names, who)
        self.env.globals["colleague_name"] = lambda who: staff_name(self.names, who)
        self.env.globals["minutes"] = minutes_label
        self.env.globals["field_label"] = self.field_label
        self.env.globals["answer_text"] = self.answer_text
        self.env.globals["Perm"] = Perm
        self.env.globals["shown_address"] = shown_address
        self.env.tests["event"] = lambda item: isinstance(item, HistoryEvent)

    def cookie_secure(self, request: Request) -> bool:
        """Cookies are Secure when configured so (staff.cookie_secure, or an https public
        URL), and whenever the request came over HTTPS: as the app decides HSTS, from the
        scheme, which the server takes from the trusted reverse proxy's X-Forwarded-Proto."""
        return self.backend.config.staff.cookie_secure or request.url.scheme == "https"

    # -- formatting -----------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def when(self, moment: datetime | None) -> str:
        # Isolated left-to-right, so that a date keeps its order inside Arabic text.
        return _ltr(self.local(moment).strftime("%Y-%m-%d %H:%M")) if moment else "—"

    @pass_context
    def day(self, context: Context, moment: datetime | None) -> str:
        """A due date in both calendars (Gregorian, then Hijri with its era: هـ, AH)."""
        if moment is None:
            return "—"
        local = self.local(moment).date()
        t = context.get("t") or translator("ar")
        return f"{_ltr(local.isoformat())} · {t('time.hijri', date=_ltr(to_hijri(local)))}"

    @staticmethod
    def size(count: int) -> str:
        if count < 1024:
            return _ltr(f"{count} B")
        if count < 1024 * 1024:
            return _ltr(f"{count / 1024:.1f} KB")
        return _ltr(f"{count / 1024 / 1024:.1f} MB")

    def waited(self, t: Translator, since: datetime | None, now: datetime) -> str:
        if since is None:
            return "—"
        minutes = max(0, int((now - since).total_seconds() // 60))
        if minutes < 60:
            return t("time.minutes", n=minutes)
        if minutes < 60 * 24:
            return t("time.hours", h=minutes // 60, m=minutes % 60)
        return t.counted("time.days", minutes // (60 * 24))

    def form_title(self, form_id: str, lang: str) -> str:
        form = self.backend.knowledge.forms.get(form_id)
        if form is None:
            return form_id
        return form.title.get(lang) or form.title.get("ar") or form_id

    def _field(self, form_id: str, name: str) -> FormField | None:
        """A field of a form as loaded now (None for a form or field since removed)."""
        form = self.backend.knowledge.forms.get(form_id)
        return next((f for f in form.fields if f.name == name), None) if form else None

    def field_label(self, form_id: str, name: str, lang: str) -> str:
        spec = self._field(form_id, name)
        if spec is None or not spec.label:
            return name
        return spec.label.get(lang) or spec.label.get("ar") or name

    def answer_text(
        self, form_id: str, answer: Any, lang: str, documents: Sequence[Any] = ()
    ) -> str:
        """A stored answer as staff read it: a choice, yes or no, a count of files in the
        console's language (they were stored in the beneficiary's), a masked ID in full
        (staff check it against the documents), else as the beneficiary confirmed it."""
        spec = self._field(form_id, answer.field)
        value, display = answer.value, answer.display or ""
        if spec is not None and spec.type is FieldType.ATTACHMENT:
            # The files are stored as the request's documents, under the field's name.
            count = sum(1 for d in documents if d.field == answer.field)
            return translator(lang).counted("answer.files", count)
        if spec is not None and value:
            option = spec.option(value)
            if option is not None:
                return option.label(lang)
            if spec.type is FieldType.YESNO and value in ("yes", "no"):
                return translator(lang)(f"answer.{value}")

        if value and "*" in display:
            return str(value)
        return display or value or "—"

    def org(self, lang: str) -> str:
        org = self.backend.config.organization
        return org.name_en if lang == "en" else org.name_ar

    # -- who is signed in -----------------------------------------------------------------

    async def who(self, request: Request) -> Staff | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        token = await self.keys.session_token(cookie)
        if token is None:
            return None
        digest = token_hash(token)
        async with self.db.session(write=False) as session:
            found = await ConsoleTx(session).session_user(digest)
            if found is not None and time.monotonic() >= self._names_until:
                self.names = await ConsoleTx(session).staff_names()
                self._names_until = time.monotonic() + NAMES_SECONDS
        if found is None:
            return None
        _, user = found
        return Staff(
            id=user.id,
            email=user.email,
            name=user.name,
            role=Role(user.role),
            csrf=await self.keys.csrf(digest),
        )

    def names_changed(self) -> None:
        """An account was added or renamed here: read the names again on the next page."""
        self._names_until = 0.0

    # -- pages ----------------------------------------------------------------------------

    def lang_of(self, request: Request) -> str:
        return request.cookies.get(LANG_COOKIE) or "ar"

    def render(
        self,
        request: Request,
        staff: Staff | None,
        template: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        t = translator(self.lang_of(request))
        context.setdefault("done", request.query_params.get("done", ""))
        context.setdefault("error", request.query_params.get("error", ""))
        html = self.env.get_template(template).render(
            t=t,
            staff=staff,
            csrf=staff.csrf if staff else context.pop("csrf", ""),
            org=self.org(t.lang),
            path=request.url.path,
            # The page as it stands, without its one-time notice (?done=, ?error=): switching
            # language must not show "Request updated" again.
            query=urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k not in NOTICES]
            ),
            now=datetime.now(UTC),
            console=self,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def error(self, request: Request, status: int, key: str) -> HTMLResponse:
        """An error page with the console's bar and navigation for whoever is signed in."""
        staff = await self.who(request)
        return self.render(request, staff, "error.html", status=status, message_key=key)

    def back(self, url: str, flash: str | None = None) -> RedirectResponse:
        """After a form: see the result (303, so a reload does not post again)."""
        if flash:
            url += ("&" if "?" in url else "?") + f"done={flash}"
        return RedirectResponse(url, status_code=303)


def console_of(request: Request) -> Console:
    console: Console = request.scope[SCOPE_KEY]
    return console


def viewer(perm: Perm | None = None) -> Callable[[Request], Awaitable[Staff]]:
    """Dependency for pages: signed in, and allowed ``perm``."""

    async def dependency(request: Request) -> Staff:
        staff = await console_of(request).who(request)
        if staff is None:
            raise LoginRequired
        if perm is not None and not can(staff, perm):
            raise Denied
        return staff

    return dependency


def actor(perm: Perm | None = None) -> Callable[[Request], Awaitable[Staff]]:
    """Dependency for forms: signed in, the session's CSRF token, and allowed ``perm``."""

    async def dependency(request: Request) -> Staff:
        staff = await console_of(request).who(request)
        if staff is None:
            raise LoginRequired
        form = await request.form()
        given = form.get("csrf")
        if not isinstance(given, str) or not secrets.compare_digest(given, staff.csrf):
            raise BadForm
        if perm is not None and not can(staff, perm):
            raise Denied
        return staff

    return dependency
