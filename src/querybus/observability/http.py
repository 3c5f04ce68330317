"""A very small HTTP/1.1 server for ``/health`` and ``/metrics``.

Probes and Prometheus send one short GET at a time; a full web framework
would be a large dependency for that, so this answers GET with
``Connection: close`` on asyncio streams and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from querybus.cancellation import wait_for

__all__ = ["Handler", "HttpServer", "Response"]

log = logging.getLogger("querybus.http")

#: (status, content type, body)
Response = tuple[int, str, bytes]
Handler = Callable[[], Awaitable[Response]]

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
    400: "Bad Request",
}


class HttpServer:
    """Serves ``routes`` (path → handler) on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self, routes: dict[str, Handler], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await wait_for(reader.readline(), 5.0)
            while (await wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            parts = line.decode("latin-1").split()
            if len(parts) < 2:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            elif parts[0] not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"only GET\n"
            else:
                handler = self._routes.get(parts[1].split("?", 1)[0])
                if handler is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = await handler()
                    except Exception:
                        log.exception("HTTP handler for %s failed", parts[1])
                        status, ctype, body = 500, "text/plain", b"internal error\n"
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1"))
            if parts and parts[0] != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
