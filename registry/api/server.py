"""uvicorn, stopping cleanly with streams open: a stream never ends by itself, and uvicorn
waits for every open response before it stops, so the change feed is told to end its
streams and waits first."""

from __future__ import annotations

import socket

import uvicorn


class Server(uvicorn.Server):
    """A ``uvicorn.Server`` whose shutdown ends the app's event streams and long polls."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        feed = getattr(getattr(self.config.app, "state", None), "feed", None)
        if feed is not None:
            feed.close()
        await super().shutdown(sockets=sockets)
