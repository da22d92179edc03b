"""The web-chat channel: the page on the association's site and its JSON API."""

from adapters.webchat.api import ChatItem, WebchatBackend, build_router

__all__ = ["ChatItem", "WebchatBackend", "build_router"]
