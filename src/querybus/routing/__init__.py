"""Read/write routing over a PostgreSQL primary and streaming replicas.

Modules (imported directly, so that the adapter's validation can use
:mod:`querybus.routing.classify` without loading the database code):

* :mod:`~querybus.routing.classify` — pglast classification and complexity (pure);
* :mod:`~querybus.routing.router` — the routing rules (pure);
* :mod:`~querybus.routing.strategies` — round-robin, least-outstanding, weighted-random;
* :mod:`~querybus.routing.lag` — LSN arithmetic and lag estimates;
* :mod:`~querybus.routing.targets` — pools and monitor connections (asyncpg);
* :mod:`~querybus.routing.monitor` — lag sampling, health, function catalog;
* :mod:`~querybus.routing.executor` — :class:`RoutingExecutor`, the adapter's executor;
* :mod:`~querybus.routing.settings` — :class:`RoutingSettings` (``from_env()``);
* :mod:`~querybus.routing.decisions` — the :class:`RoutingDecision` record;
* :mod:`~querybus.routing.discovery` — :class:`ReplicaDiscovery`: replicas from the registry.

See ``docs/routing.md``.
"""
