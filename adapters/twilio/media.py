"""Fetching the files a beneficiary sent, with the account's credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from enum import StrEnum

import httpx

from adapters.twilio.inbound import MediaRef
from conversations.messages import Attachment

# Stores the streamed bytes (declared type given) and says what was stored.
SaveFile = Callable[[AsyncIterator[bytes], str], Awaitable[Attachment]]


class MediaProblem(StrEnum):
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    FAILED = "failed"
    UNREADABLE = "unreadable"  # looks like an image but does not open as one
    WRONG_TYPE = "wrong_type"  # a document or picture of a kind not accepted (a Word file)


def problem_of_type(content_type: str) -> MediaProblem:
    """A file of a kind not accepted: a document or a picture is the wrong type of file (say
    which are taken); a voice note, a video or a location is not a file at all here."""
    family = content_type.split("/", 1)[0].lower()
    if family in ("application", "text", "image"):
        return MediaProblem.WRONG_TYPE
    return MediaProblem.UNSUPPORTED


class MediaRejected(Exception):
    def __init__(self, problem: MediaProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class MediaFetcher:
    """Downloads Twilio media URLs (HTTP basic auth with the account SID and auth token).

    Twilio redirects media to its file store; the credentials are not sent there (httpx
    drops the Authorization header when a redirect leaves the origin).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        max_bytes: int,
        allowed_types: Collection[str],
        timeout: float = 10.0,
    ) -> None:
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self.max_bytes = max_bytes
        self.allowed_types = frozenset(allowed_types)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=True)
        return self._client

    async def fetch(self, media: MediaRef, save: SaveFile) -> Attachment:
        """Stream one file into ``save``; MediaRejected says why it was not kept."""
        if media.content_type and media.content_type not in self.allowed_types:
            raise MediaRejected(problem_of_type(media.content_type))
        try:
            async with self._http().stream("GET", media.url, auth=self._auth) as response:
                if response.status_code != 200:
                    raise MediaRejected(MediaProblem.FAILED)
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    raise MediaRejected(MediaProblem.TOO_LARGE)
                return await save(self._limited(response), media.content_type)
        except httpx.HTTPError:
            raise MediaRejected(MediaProblem.FAILED) from None

    async def _limited(self, response: httpx.Response) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in response.aiter_bytes():
            seen += len(chunk)
            if seen > self.max_bytes:
                raise MediaRejected(MediaProblem.TOO_LARGE)
            yield chunk

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
