"""Web-chat sessions the server issued, and how many new ones one network may open.

A session token is 16 random bytes and an HMAC-SHA256 of them (cut to 16 bytes), both in
base64url: 44 characters. The key is the installation's secret that signs the staff
console's sessions (``[staff] secret_key``, else generated once and kept in the database),
so every server process of an installation accepts the tokens of the others. A token that
is not signed is accepted only when the database already knows it as a web-chat session:
one started before tokens were signed. Anything else is no session: the browser is given a
new one at /api/webchat/start, where the number of new sessions per network is limited.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets

from bot.security import FloodGuard, FloodLimits, Verdict
from staff.security import Keys

PURPOSE = b"tawasul.webchat.session:"
NONCE_BYTES = 16
SIGNATURE_BYTES = 16
NONCE_CHARS = 22  # base64url of NONCE_BYTES, unpadded
TOKEN_CHARS = 44


# New sessions from one network (client address): a household or an office opens a few; a
# mobile operator's shared address may carry more, so the limit is generous. Beyond
# ``slow_after`` in the window each new one waits its turn, and a network that would wait
# too long, or opens over ``block_after``, gets no new session for ``block_seconds``.
# Sessions already open are never affected.
def new_session_limits(per_address: int = 60) -> FloodLimits:
    """``per_address`` new sessions in ten minutes before each waits a second; twice as many,
    or a wait over 30 s, and none for ten minutes ([webchat] new_sessions_per_address)."""
    return FloodLimits(
        window=600,
        slow_after=per_address,
        slow_seconds=1.0,
        max_wait=30,
        block_after=per_address * 2,
        block_seconds=600,
        notify=False,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SessionTokens:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    async def issue(self) -> str:
        nonce = _b64(secrets.token_bytes(NONCE_BYTES))
        return nonce + await self._signature(nonce)

    async def signed(self, token: str) -> bool:
        """Whether this server (or another of the installation) issued the token."""
        if len(token) != TOKEN_CHARS or not token.isascii():
            return False
        expected = await self._signature(token[:NONCE_CHARS])
        return hmac.compare_digest(expected, token[NONCE_CHARS:])

    async def _signature(self, nonce: str) -> str:
        key = (await self.keys.secret()).encode()
        digest = hmac.new(key, PURPOSE + nonce.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:SIGNATURE_BYTES])


class NewSessions:
    """Counts the new sessions of each network in a sliding window, in memory (per process)."""

    def __init__(self, limits: FloodLimits | None = None) -> None:
        self.guard = FloodGuard(limits or new_session_limits())

    @property
    def block_minutes(self) -> int:
        return max(1, round(self.guard.limits.block_seconds / 60))

    async def admit(self, network: str) -> bool:
        """Whether this network may open one more session now; a busy one waits here first.
        The server's own machine is not limited: behind a reverse proxy whose forwarded
        address is not trusted, every visitor would seem to come from it, and the limit
        would hold back everyone's first message rather than one network's."""
        if _own_machine(network):
            return True
        verdict, wait = self.guard.check("webchat-network", network)
        if verdict is Verdict.SLOW:
            await asyncio.sleep(wait)
            return True
        return verdict is Verdict.PASS


def _own_machine(network: str) -> bool:
    try:
        return ipaddress.ip_address(network).is_loopback
    except ValueError:
        return network in ("", "localhost", "testclient")
