"""A fake Consul agent: a real HTTP server on 127.0.0.1 that follows the
documented agent API for the parts querybus uses.

Consul cannot be installed on our machines, so the Consul registry backend is
tested against this. It speaks HTTP over a socket (not an httpx mock), so
the backend's code path is the one a real agent sees. Implemented, after
https://developer.hashicorp.com/consul/api-docs:

* ``PUT /v1/agent/service/register`` — ``ID``, ``Name``, ``Tags``, ``Meta``,
  ``Address``, ``Port``, ``Check``/``Checks`` with ``CheckID``, ``Name``,
  ``TTL``, ``Status``, ``DeregisterCriticalServiceAfter``;
* ``PUT /v1/agent/service/deregister/{id}``;
* ``PUT /v1/agent/check/{pass,warn,fail}/{check_id}?note=``;
* ``GET /v1/agent/services``, ``GET /v1/agent/checks``;
* ``GET /v1/health/service/{name}`` and ``GET /v1/catalog/services``, both
  with blocking queries (``?index=&wait=``, ``X-Consul-Index``);
* ``GET /v1/status/leader``.

Behaviour kept: a TTL check that is not updated within its TTL turns
``critical`` with the output ``TTL expired``; a service whose check stayed
critical for ``DeregisterCriticalServiceAfter`` is removed. Known
differences: real Consul enforces at least one minute for
``DeregisterCriticalServiceAfter`` and reaps every 30 s (the fake honours
the value as given, checking every 50 ms); one global index instead of
per-table indexes (allowed: indexes only promise to grow); no ACLs, no
nodes other than one, no jitter on ``wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeConsul"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NODE = "fake-node"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration such as ``1m30s`` or ``500ms`` (Consul's format)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    ttl: float | None
    status: str = "critical"  # Consul's default initial status for a TTL check
    output: str = ""
    deadline: float = 0.0
    deregister_after: float | None = None
    critical_since: float | None = None

    def view(self, service_name: str) -> dict[str, Any]:
        return {
            "Node": _NODE,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": "",
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": service_name,
            "Type": "ttl" if self.ttl is not None else "",
        }


@dataclass
class _Service:
    service_id: str
    name: str
    tags: list[str]
    meta: dict[str, str]
    address: str
    port: int
    checks: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "ID": self.service_id,
            "Service": self.name,
            "Tags": self.tags,
            "Meta": self.meta,
            "Address": self.address,
            "Port": self.port,
        }


class _HTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class FakeConsul:
    """The fake agent. ``await start()``, use :attr:`address`, ``await stop()``."""

    def __init__(self) -> None:
        self.services: dict[str, _Service] = {}
        self.checks: dict[str, _Check] = {}
        self.index = 1
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"http://127.0.0.1:{port}"
        self._reaper = asyncio.create_task(self._reap())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    # -- state --------------------------------------------------------------

    def _bump(self) -> None:
        self.index += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _reap(self) -> None:
        while True:
            now = time.monotonic()
            changed = False
            for check in list(self.checks.values()):
                if check.ttl is not None and check.status != "critical" and now >= check.deadline:
                    check.status, check.output = "critical", "TTL expired"
                    check.critical_since = now
                    changed = True
                if (
                    check.status == "critical"
                    and check.deregister_after is not None
                    and check.critical_since is not None
                    and now - check.critical_since >= check.deregister_after
                ):
                    self._remove_service(check.service_id)
                    changed = True
            if changed:
                self._bump()
            await asyncio.sleep(0.05)

    def _remove_service(self, service_id: str) -> bool:
        service = self.services.pop(service_id, None)
        if service is None:
            return False
        for check_id in service.checks:
            self.checks.pop(check_id, None)
        return True

    def _register(self, body: dict[str, Any]) -> None:
        name = body.get("Name")
        if not name:
            raise _HTTPError(400, "Missing service name")
        service_id = body.get("ID") or name
        self._remove_service(service_id)  # re-registering replaces
        service = _Service(
            service_id=service_id,
            name=name,
            tags=list(body.get("Tags") or []),
            meta=dict(body.get("Meta") or {}),
            address=body.get("Address") or "",
            port=int(body.get("Port") or 0),
        )
        definitions = list(body.get("Checks") or [])
        if body.get("Check"):
            definitions.insert(0, body["Check"])
        for n, definition in enumerate(definitions, start=1):
            if "TTL" not in definition:
                raise _HTTPError(400, "the fake only supports TTL checks")
            default_id = f"service:{service_id}" + (f":{n}" if len(definitions) > 1 else "")
            check = _Check(
                check_id=definition.get("CheckID") or default_id,
                name=definition.get("Name") or f"Service '{name}' check",
                service_id=service_id,
                ttl=parse_duration(definition["TTL"]),
                status=definition.get("Status") or "critical",
            )
            check.deadline = time.monotonic() + (check.ttl or 0.0)
            if after := definition.get("DeregisterCriticalServiceAfter"):
                check.deregister_after = parse_duration(after)
            if check.status == "critical":
                check.critical_since = time.monotonic()
            service.checks.append(check.check_id)
            self.checks[check.check_id] = check
        self.services[service_id] = service
        self._bump()

    def _update_check(self, action: str, check_id: str, note: str) -> None:
        check = self.checks.get(check_id)
        if check is None:
            raise _HTTPError(404, f'Unknown check ID "{check_id}"')
        if check.ttl is None:
            raise _HTTPError(500, f'Check "{check_id}" is not a TTL check')
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[action]
        check.deadline = time.monotonic() + check.ttl
        if status == "critical":
            check.critical_since = check.critical_since or time.monotonic()
        else:
            check.critical_since = None
        if (check.status, check.output) != (status, note):
            check.status, check.output = status, note
            self._bump()

    def _health(self, name: str, passing_only: bool) -> list[dict[str, Any]]:
        out = []
        for service in self.services.values():
            if service.name != name:
                continue
            checks = [self.checks[c].view(name) for c in service.checks]
            if passing_only and any(c["Status"] != "passing" for c in checks):
                continue
            node = {"Node": _NODE, "Address": "127.0.0.1"}
            out.append({"Node": node, "Service": service.view(), "Checks": checks})
        return out

    # -- HTTP ---------------------------------------------------------------

    async def _block(self, query: dict[str, list[str]]) -> None:
        """Wait for an index above the one asked for, or for ``wait`` (Consul's blocking query)."""
        if "index" not in query:
            return
        index = int(query["index"][0])
        wait = parse_duration(query.get("wait", ["5m"])[0])
        deadline = time.monotonic() + min(wait, 600.0)
        while self.index <= index:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "register"]:
            self._register(json.loads(body or b"{}"))
            return None
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "deregister"]:
            if not self._remove_service(parts[4]):
                raise _HTTPError(404, f'Unknown service ID "{parts[4]}"')
            self._bump()
            return None
        if method == "PUT" and parts[:3] == ["v1", "agent", "check"] and len(parts) == 5:
            if parts[3] not in ("pass", "warn", "fail"):
                raise _HTTPError(404, "not found")
            self._update_check(parts[3], parts[4], query.get("note", [""])[0])
            return None
        if method == "GET" and parts == ["v1", "agent", "services"]:
            return {s.service_id: s.view() for s in self.services.values()}
        if method == "GET" and parts == ["v1", "agent", "checks"]:
            return {
                c.check_id: c.view(self.services[c.service_id].name) for c in self.checks.values()
            }
        if method == "GET" and parts[:3] == ["v1", "health", "service"] and len(parts) == 4:
            await self._block(query)
            return self._health(parts[3], "passing" in query)
        if method == "GET" and parts == ["v1", "catalog", "services"]:
            await self._block(query)
            names: dict[str, list[str]] = {}
            for s in self.services.values():
                names.setdefault(s.name, [])
                names[s.name] = sorted(set(names[s.name]) | set(s.tags))
            return names
        if method == "GET" and parts == ["v1", "status", "leader"]:
            return "127.0.0.1:8300"
        raise _HTTPError(404, f"no handler for {method} {path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                url = urlsplit(target)
                try:
                    result = await self._route(method, url.path, parse_qs(url.query), body)
                    status, payload = 200, (b"" if result is None else json.dumps(result).encode())
                    ctype = "application/json"
                except _HTTPError as exc:
                    status, payload, ctype = exc.status, exc.text.encode(), "text/plain"
                head = (
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                    f"X-Consul-Index: {self.index}\r\n\r\n"
                )
                writer.write(head.encode() + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Only stop() cancels these tasks. Returning normally matters:
            # asyncio's stream protocol calls task.exception() on a finished
            # handler, which raises (and logs noise) for a cancelled one.
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
