"""The etcd backend: etcd 3.4's v3 JSON gateway over HTTP (httpx; no gRPC).

Each instance is the key ``{prefix}{name}/{instance_id}`` attached to a lease
of ``ceil(ttl)`` seconds (etcd leases count whole seconds and etcd raises
very short ones to its minimum, about 2 s). A heartbeat is a lease
keep-alive plus a put of the new state; an instance that stops heartbeating
vanishes when etcd expires its lease; deregistering revokes the lease, which
deletes the key at once. Watches use etcd's watch stream from the revision
of the initial range, so no change between the two is missed.

etcd is linearizable: once ``register`` returns, every reader sees it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
import msgspec

from querybus.errors import RegistryError, RegistryUnavailableError, ServiceNotFoundError
from querybus.registry.backends.base import BackendLifecycle
from querybus.registry.models import ServiceInstance, decode_instance, encode_instance

__all__ = ["EtcdBackend"]

# gRPC status NOT_FOUND, which etcd uses for "requested lease not found".
_GRPC_NOT_FOUND = 5


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class _EtcdStatusError(RegistryError):
    """etcd answered with an error (kept private: mapped before it leaves the module)."""

    def __init__(self, message: str, grpc_code: int) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code


class EtcdBackend(BackendLifecycle):
    """Registry on etcd 3.4+.

    Args:
        endpoints: one or more ``http://host:port`` client URLs (a comma-separated
            string or a sequence); the next is tried when one cannot be reached.
        prefix: key prefix for the registry.
        timeout: seconds for each HTTP request (watch streams have none).
    """

    kind = "etcd"

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        prefix: str = "querybus/registry/",
        timeout: float = 5.0,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        self._endpoints = [
            (e.strip() if "://" in e else f"http://{e.strip()}").rstrip("/") for e in endpoints
        ]
        if not self._endpoints:
            raise RegistryError("no etcd endpoint given")
        self._current = 0
        self._prefix = prefix.encode()
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._leases: dict[str, tuple[str, int]] = {}  # instance id -> (key, lease id)

    # -- plumbing ---------------------------------------------------------

    @property
    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RegistryError("etcd backend is not started")
        return self._http

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the gateway, failing over between endpoints.

        Raises:
            RegistryUnavailableError: no endpoint answered.
            _EtcdStatusError: etcd refused the request.
        """
        last: Exception | None = None
        for _ in range(len(self._endpoints)):
            url = self._endpoints[self._current] + path
            try:
                response = await self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                last = exc
                self._current = (self._current + 1) % len(self._endpoints)
                continue
            data: dict[str, Any] = response.json() if response.content else {}
            if response.status_code != 200 or "error" in data:
                raise _EtcdStatusError(
                    str(data.get("message") or data.get("error") or response.status_code),
                    int(data.get("code", 0)),
                )
            return data
        raise RegistryUnavailableError(f"etcd unreachable at {self._endpoints}: {last}") from last

    def _key(self, instance: ServiceInstance) -> bytes:
        return self._prefix + f"{instance.name}/{instance.instance_id}".encode()

    def _range_of(self, name: str | None) -> tuple[bytes, bytes]:
        start = self._prefix + (f"{name}/".encode() if name is not None else b"")
        return start, _prefix_end(start)

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and check that etcd answers.

        Raises:
            RegistryUnavailableError: no endpoint answered.
        """
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        try:
            await self._range(*self._range_of(None), keys_only=True, limit=1)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the HTTP client (leases run out by themselves)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- the contract -----------------------------------------------------

    async def _put(self, key: bytes, instance: ServiceInstance, lease: int) -> None:
        await self._call(
            "/v3/kv/put",
            {"key": _b64(key), "value": _b64(encode_instance(instance)), "lease": str(lease)},
        )

    async def register(self, instance: ServiceInstance) -> None:
        """Grant a lease and put the instance under it.

        Raises:
            RegistryUnavailableError: etcd cannot be reached.
            RegistryError: etcd refused.
        """
        grant = await self._call("/v3/lease/grant", {"TTL": max(1, math.ceil(instance.ttl))})
        lease = int(grant["ID"])
        key = self._key(instance)
        await self._put(key, instance, lease)
        old = self._leases.get(instance.instance_id)
        self._leases[instance.instance_id] = (key.decode(), lease)
        if old is not None and old[1] != lease:
            # The key now hangs on the new lease; the old one only wastes
            # etcd's memory until it expires.
            with contextlib.suppress(RegistryError):
                await self._call("/v3/lease/revoke", {"ID": str(old[1])})

    async def heartbeat(self, instance: ServiceInstance) -> None:
        """Keep the lease alive and store the new state.

        Raises:
            ServiceNotFoundError: the lease expired (or was never granted here).
            RegistryUnavailableError: etcd cannot be reached.
        """
        held = self._leases.get(instance.instance_id)
        if held is None:
            raise ServiceNotFoundError(f"no lease held for {instance.instance_id!r}")
        key, lease = held
        try:
            answer = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
            # An expired lease is answered with no TTL (zero in proto3 JSON).
            if int(answer.get("result", {}).get("TTL", 0)) <= 0:
                raise ServiceNotFoundError(f"lease of {instance.instance_id!r} expired")
            await self._put(key.encode(), instance, lease)
        except _EtcdStatusError as exc:
            if exc.grpc_code == _GRPC_NOT_FOUND:
                raise ServiceNotFoundError(f"lease of {instance.instance_id!r} expired") from exc
            raise

    async def deregister(self, instance_id: str) -> None:
        """Revoke the instance's lease (deleting its key), or delete the key.

        Raises:
            RegistryUnavailableError: etcd cannot be reached.
        """
        held = self._leases.pop(instance_id, None)
        if held is not None:
            with contextlib.suppress(_EtcdStatusError):  # already expired: nothing to do
                await self._call("/v3/lease/revoke", {"ID": str(held[1])})
                return
        # Not ours (or the lease was gone): find the key by its id and delete it.
        start, end = self._range_of(None)
        for kv in await self._range(start, end, keys_only=True):
            key = _unb64(kv["key"])
            if key.endswith(b"/" + instance_id.encode()):
                await self._call("/v3/kv/deleterange", {"key": _b64(key)})

    async def _range(
        self, start: bytes, end: bytes, *, keys_only: bool = False, limit: int = 0
    ) -> list[dict[str, Any]]:
        data = await self._call(
            "/v3/kv/range",
            {"key": _b64(start), "range_end": _b64(end), "keys_only": keys_only, "limit": limit},
        )
        kvs: list[dict[str, Any]] = data.get("kvs", [])
        return kvs

    @staticmethod
    def _decode(kv: dict[str, Any]) -> ServiceInstance | None:
        try:
            return decode_instance(_unb64(kv.get("value", "")))
        except (msgspec.DecodeError, ValueError):
            return None  # a foreign or corrupt value under our prefix is not an instance

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        """Every instance whose lease is alive.

        Raises:
            RegistryUnavailableError: etcd cannot be reached.
        """
        out = [i for kv in await self._range(*self._range_of(name)) if (i := self._decode(kv))]
        out.sort(key=lambda i: (i.name, i.instance_id))
        return out

    async def snapshots(
        self, name: str | None = None
    ) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now, then after every change etcd reports.

        Raises:
            RegistryUnavailableError: etcd cannot be reached.
        """
        start, end = self._range_of(name)
        while True:
            data = await self._call("/v3/kv/range", {"key": _b64(start), "range_end": _b64(end)})
            revision = int(data["header"]["revision"])
            table: dict[bytes, ServiceInstance] = {}
            for kv in data.get("kvs", []):
                if (instance := self._decode(kv)) is not None:
                    table[_unb64(kv["key"])] = instance
            yield sorted(table.values(), key=lambda i: (i.name, i.instance_id))
            # The stream ends when etcd cancels the watch (e.g. compaction)
            # or the connection drops; then we range again and resume.
            async for events in self._watch(start, end, revision + 1):
                for event in events:
                    key = _unb64(event["kv"]["key"])
                    if event.get("type") == "DELETE":
                        table.pop(key, None)
                    elif (instance := self._decode(event["kv"])) is not None:
                        table[key] = instance
                yield sorted(table.values(), key=lambda i: (i.name, i.instance_id))

    async def _watch(
        self, start: bytes, end: bytes, revision: int
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        body = {
            "create_request": {
                "key": _b64(start),
                "range_end": _b64(end),
                "start_revision": str(revision),
            }
        }
        url = self._endpoints[self._current] + "/v3/watch"
        timeout = httpx.Timeout(self._timeout, read=None)  # the stream is idle between changes
        try:
            async with self._client.stream("POST", url, json=body, timeout=timeout) as response:
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("canceled"):
                        return
                    if events := result.get("events"):
                        yield events
        except httpx.HTTPError:
            # Let the caller's next range decide whether etcd is really gone
            # (it raises RegistryUnavailableError when no endpoint answers).
            self._current = (self._current + 1) % len(self._endpoints)
            await asyncio.sleep(0.1)  # don't spin on a flapping endpoint
