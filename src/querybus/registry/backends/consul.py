"""The Consul backend: Consul's agent HTTP API (httpx).

An instance is a Consul service (``ID`` = instance id, ``Name`` = service
name, ``Tags`` = [service type]) whose ``Meta`` holds the user metadata plus
``querybus_*`` keys (endpoint, type, ttl, registration time). It carries one
TTL check, ``service:{id}``, with ``DeregisterCriticalServiceAfter``; a
heartbeat is ``PUT /v1/agent/check/{pass|warn|fail}/service:{id}`` with the
note. When heartbeats stop, Consul turns the check critical with the output
"TTL expired"; this backend hides such instances at once (Consul itself only
reaps them after ``DeregisterCriticalServiceAfter``, at least one minute).
Queries use ``/v1/health/service/{name}``; watches use blocking queries.

Consul does not report when a check was last updated, so the heartbeat time
travels in the check's output: ``hb=<epoch seconds> <note>``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote

import httpx

from querybus.errors import RegistryError, RegistryUnavailableError, ServiceNotFoundError
from querybus.registry.backends.base import BackendLifecycle
from querybus.registry.models import HealthStatus, ServiceInstance

__all__ = ["ConsulBackend"]

_META = "querybus_"
_ACTION = {
    HealthStatus.PASSING: "pass",
    HealthStatus.WARNING: "warn",
    HealthStatus.CRITICAL: "fail",
}
_OUTPUT = re.compile(r"^hb=(?P<hb>[0-9.]+) ?(?P<note>.*)$", re.DOTALL)
_CONSUL_STATUS = {"passing": HealthStatus.PASSING, "warning": HealthStatus.WARNING}


def _duration(seconds: float) -> str:
    # Consul parses Go durations; milliseconds keep sub-second TTLs exact.
    return f"{max(1, round(seconds * 1000))}ms"


def _check_id(instance_id: str) -> str:
    return f"service:{instance_id}"


class ConsulBackend(BackendLifecycle):
    """Registry on a Consul agent.

    Args:
        address: the agent's HTTP address, ``http://127.0.0.1:8500`` or ``host:port``.
        token: an ACL token (``CONSUL_HTTP_TOKEN``), when ACLs are on.
        deregister_after: seconds a critical service stays before Consul
            reaps it (Consul enforces at least 60).
        watch_wait: seconds a blocking query may wait.
        timeout: seconds for each ordinary request.
    """

    kind = "consul"

    def __init__(
        self,
        address: str = "http://127.0.0.1:8500",
        *,
        token: str | None = None,
        deregister_after: float = 60.0,
        watch_wait: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.address = (address if "://" in address else f"http://{address}").rstrip("/")
        self._headers = {"X-Consul-Token": token} if token else {}
        self._deregister_after = deregister_after
        self._watch_wait = watch_wait
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    # -- plumbing ---------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        request_timeout: float | None = None,
    ) -> httpx.Response:
        if self._http is None:
            raise RegistryError("Consul backend is not started")
        try:
            return await self._http.request(
                method, path, params=params, json=json, timeout=request_timeout or self._timeout
            )
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(f"Consul unreachable at {self.address}: {exc}") from exc

    @staticmethod
    def _fail(response: httpx.Response) -> RegistryError:
        if response.status_code >= 500 and "unknown" not in response.text.lower():
            return RegistryUnavailableError(f"Consul error {response.status_code}: {response.text}")
        return RegistryError(f"Consul refused ({response.status_code}): {response.text}")

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and check that the agent answers.

        Raises:
            RegistryUnavailableError: the agent cannot be reached.
        """
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.address, headers=self._headers)
        try:
            response = await self._request("GET", "/v1/agent/services")
            if response.status_code != 200:
                raise self._fail(response)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the HTTP client (TTL checks run out by themselves)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- the contract -----------------------------------------------------

    async def register(self, instance: ServiceInstance) -> None:
        """Register the service with its TTL check, then report its status.

        Raises:
            RegistryUnavailableError: the agent cannot be reached.
            RegistryError: the agent refused the registration.
        """
        meta = {k: v for k, v in instance.metadata.items() if not k.startswith(_META)}
        meta.update(
            {
                _META + "endpoint": instance.endpoint,
                _META + "type": instance.service_type,
                _META + "ttl": repr(instance.ttl),
                _META + "registered_at": repr(instance.registered_at),
            }
        )
        body = {
            "ID": instance.instance_id,
            "Name": instance.name,
            "Tags": [instance.service_type],
            "Meta": meta,
            "Check": {
                "CheckID": _check_id(instance.instance_id),
                "Name": "querybus heartbeat",
                "TTL": _duration(instance.ttl),
                "DeregisterCriticalServiceAfter": _duration(self._deregister_after),
                "Status": instance.status.value,
            },
        }
        response = await self._request("PUT", "/v1/agent/service/register", json=body)
        if response.status_code != 200:
            raise self._fail(response)
        await self.heartbeat(instance)

    async def heartbeat(self, instance: ServiceInstance) -> None:
        """Update the TTL check with the status and note.

        Raises:
            ServiceNotFoundError: the agent does not know the check (reaped or restarted).
            RegistryUnavailableError: the agent cannot be reached.
        """
        action = _ACTION[instance.status]
        note = f"hb={instance.last_heartbeat:.3f} {instance.note}".rstrip()
        path = f"/v1/agent/check/{action}/{quote(_check_id(instance.instance_id), safe='')}"
        response = await self._request("PUT", path, params={"note": note})
        if response.status_code == 200:
            return
        # Consul answers 404 (older versions 500) with "Unknown check ID".
        if response.status_code == 404 or "unknown check" in response.text.lower():
            raise ServiceNotFoundError(f"Consul does not know {instance.instance_id!r}")
        raise self._fail(response)

    async def deregister(self, instance_id: str) -> None:
        """Deregister the service (unknown ids are ignored).

        Raises:
            RegistryUnavailableError: the agent cannot be reached.
        """
        path = f"/v1/agent/service/deregister/{quote(instance_id, safe='')}"
        response = await self._request("PUT", path)
        if response.status_code not in (200, 404) and "unknown" not in response.text.lower():
            raise self._fail(response)

    @staticmethod
    def _decode(entry: dict[str, Any]) -> ServiceInstance | None:
        service = entry.get("Service") or {}
        meta: dict[str, str] = dict(service.get("Meta") or {})
        if _META + "endpoint" not in meta:
            return None  # a service registered by something else
        checks: list[dict[str, Any]] = entry.get("Checks") or []
        own = _check_id(service["ID"])
        status = HealthStatus.PASSING
        last_heartbeat = time.time()
        note = ""
        for check in checks:
            check_status = _CONSUL_STATUS.get(check.get("Status", ""), HealthStatus.CRITICAL)
            output = check.get("Output") or ""
            if check.get("CheckID") == own:
                if check_status is HealthStatus.CRITICAL and output.startswith("TTL expired"):
                    return None  # heartbeats stopped: expired, whatever Consul still keeps
                if match := _OUTPUT.match(output):
                    last_heartbeat = float(match["hb"])
                    note = match["note"]
            status = HealthStatus.worst((status, check_status))
        ttl = float(meta.pop(_META + "ttl", "10"))
        registered_at = float(meta.pop(_META + "registered_at", "0"))
        endpoint = meta.pop(_META + "endpoint")
        service_type = meta.pop(_META + "type", "")
        return ServiceInstance(
            name=service["Service"],
            instance_id=service["ID"],
            service_type=service_type,
            endpoint=endpoint,
            metadata=meta,
            status=status,
            note=note,
            last_heartbeat=last_heartbeat,
            ttl=ttl,
            registered_at=registered_at,
        )

    async def _health(
        self, name: str, index: int = 0, wait: float | None = None
    ) -> tuple[list[ServiceInstance], int]:
        params = {}
        timeout = None
        if index:
            params = {"index": str(index), "wait": _duration(wait or self._watch_wait)}
            # Consul may add up to wait/16 of jitter; leave room for it.
            timeout = (wait or self._watch_wait) * 1.1 + self._timeout
        response = await self._request(
            "GET",
            f"/v1/health/service/{quote(name, safe='')}",
            params=params,
            request_timeout=timeout,
        )
        if response.status_code != 200:
            raise self._fail(response)
        found = [i for e in response.json() if (i := self._decode(e)) is not None]
        return found, int(response.headers.get("X-Consul-Index", "0"))

    async def _services(self, index: int = 0, wait: float | None = None) -> tuple[list[str], int]:
        params = {}
        timeout = None
        if index:
            params = {"index": str(index), "wait": _duration(wait or self._watch_wait)}
            timeout = (wait or self._watch_wait) * 1.1 + self._timeout
        response = await self._request(
            "GET", "/v1/catalog/services", params=params, request_timeout=timeout
        )
        if response.status_code != 200:
            raise self._fail(response)
        return sorted(response.json()), int(response.headers.get("X-Consul-Index", "0"))

    async def _all(self) -> tuple[list[ServiceInstance], int]:
        names, index = await self._services()
        out: list[ServiceInstance] = []
        for found, _ in await asyncio.gather(*(self._health(n) for n in names)):
            out.extend(found)
        return out, index

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        """Registered instances whose TTL check has not expired.

        Raises:
            RegistryUnavailableError: the agent cannot be reached.
        """
        found = (await self._health(name))[0] if name is not None else (await self._all())[0]
        found.sort(key=lambda i: (i.name, i.instance_id))
        return found

    async def snapshots(
        self, name: str | None = None
    ) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now, then after each change (blocking queries).

        For one service, a blocking query on its health returns on any
        change, check updates included. For all services, the blocking query
        on the catalog returns only when services come or go, so it is
        capped at one second to pick up status changes too.

        Raises:
            RegistryUnavailableError: the agent cannot be reached.
        """
        index = 0
        while True:
            if name is not None:
                found, new_index = await self._health(name, index)
            else:
                if index:
                    await self._services(index, wait=1.0)
                found, new_index = await self._all()
            # Consul's rule for blocking queries: an index that goes backwards
            # (agent restart, snapshot restore) means start over from 0.
            index = new_index if new_index >= index else 0
            index = max(index, 1)
            found.sort(key=lambda i: (i.name, i.instance_id))
            yield found
