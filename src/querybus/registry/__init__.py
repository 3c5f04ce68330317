"""The service registry: services register themselves, clients discover them.

* :class:`ServiceRegistry` registers instances and heartbeats them
  (:class:`Registration`), re-running their :class:`HealthCheck` s;
* :class:`RegistryClient` queries, discovers and watches;
* backends: memory, Kafka (a compacted topic), etcd, Consul — chosen with
  :func:`open_backend` or :class:`RegistrySettings`.

See ``docs/registry.md``.
"""

from querybus.registry.backends.base import RegistryBackend
from querybus.registry.client import RegistryClient
from querybus.registry.config import RegistrySettings, open_backend, registry_from_settings
from querybus.registry.health import (
    DatabaseCheck,
    HealthCheck,
    KafkaCheck,
    ManualCheck,
    ReplicaLagCheck,
    run_checks,
)
from querybus.registry.models import (
    ChangeKind,
    CheckResult,
    HealthStatus,
    RegistryEvent,
    ServiceInstance,
)
from querybus.registry.service import (
    Registration,
    RegistrationState,
    ServiceRegistry,
    new_instance_id,
)

__all__ = [
    "ChangeKind",
    "CheckResult",
    "DatabaseCheck",
    "HealthCheck",
    "HealthStatus",
    "KafkaCheck",
    "ManualCheck",
    "Registration",
    "RegistrationState",
    "RegistryBackend",
    "RegistryClient",
    "RegistryEvent",
    "RegistrySettings",
    "ReplicaLagCheck",
    "ServiceInstance",
    "ServiceRegistry",
    "new_instance_id",
    "open_backend",
    "registry_from_settings",
    "run_checks",
]
