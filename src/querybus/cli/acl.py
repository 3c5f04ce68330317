"""``querybus acl adapter|client|tenant``: the least Kafka ACLs each role needs.

Prints them (one ``kafka-acls.sh`` command per ACL, so an operator can review
or run them as they are), or applies them through the admin API (``--apply``)
with the configured ``KAFKA_*`` security as an admin principal (a super user,
or one allowed ALTER on the cluster). ``--delete`` removes exactly the same
ACLs again.

Reply isolation. Adapters send a reply to the topic its request names, which
must be the response topic or a topic named under it (``<response>.<name>``;
``adapter/replies.py``). So each caller principal gets its own reply topic,
``<response>.<principal name>``, and READ on that topic alone; a tenant whose
clients may share replies gets READ on the prefix ``<response>.<tenant>.``.
Nobody but the adapters is given anything on the shared response topic or the
error, dead-letter, audit and routing-decision topics. A client reads its
replies the way it always does (one partition, assigned manually, no group),
only from its own topic (``QUERYBUS_REPLY_TOPIC``), so nothing is slower.

Topics are not created here: adapters and clients create theirs when they may
(CREATE), and otherwise start as long as the topics exist; an operator
creates each reply topic with the response topic's partition count.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.markup import escape

from querybus.cli.common import configure_client_logging, console
from querybus.config import AdapterSettings, BusSettings, TopicNames
from querybus.errors import QueryBusError
from querybus.transport import connect
from querybus.transport.acl import Acl, AclOperation, PatternType, ResourceType
from querybus.transport.kafka import KafkaTransport

__all__ = [
    "acl_app",
    "adapter_acls",
    "client_acls",
    "default_reply_topic",
    "kafka_acls_command",
    "registry_topic",
    "tenant_acls",
]

_HELP = (
    "Print or apply the least Kafka ACLs of an adapter, a client or a tenant.\n\n"
    "Prints one kafka-acls.sh command per ACL; --apply creates them through the admin API "
    "with the configured KAFKA_* security (as an admin principal); --delete removes them. "
    "Topic names follow QUERYBUS_TOPIC_PREFIX.\n\n"
    "Reply isolation: adapters reply only to the response topic or a topic under it "
    "(<response>.<name>). Each client principal reads its own reply topic, "
    "<response>.<principal name> (its QUERYBUS_REPLY_TOPIC), and nothing else; a tenant's "
    "principals read every topic under <response>.<tenant>. (a prefixed ACL). Only adapters "
    "may use the shared response, error, dead-letter, audit and routing-decision topics. "
    "Replies are read as before (one partition, assigned, no group), so nothing is slower.\n\n"
    "Operators create the topics (adapters and clients create them only when allowed "
    "CREATE), each reply topic with the response topic's partition count."
)

acl_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=_HELP,
    short_help="Print or apply the least Kafka ACLs of an adapter, a client or a tenant.",
)

_READ, _WRITE, _DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
# A name that may be put into a topic name as one segment: no "." (a client
# called "acme.x" would otherwise read under tenant acme's prefix, or the
# reverse), and only characters Kafka allows in topic names.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def _principal_name(principal: str) -> str:
    kind, _, name = principal.partition(":")
    if not kind or not name:
        raise typer.BadParameter(f"a principal is TYPE:NAME (User:alice), got {principal!r}")
    return name


def _topic(principal: str, name: str, *operations: AclOperation) -> list[Acl]:
    return [Acl(principal, ResourceType.TOPIC, name, op) for op in operations]


def _prefixed(principal: str, prefix: str, *operations: AclOperation) -> list[Acl]:
    return [
        Acl(principal, ResourceType.TOPIC, prefix, op, pattern=PatternType.PREFIXED)
        for op in operations
    ]


def registry_topic(topics: TopicNames) -> str | None:
    """The Kafka registry's topic when ``QUERYBUS_REGISTRY=kafka``, else None."""
    if (os.environ.get("QUERYBUS_REGISTRY") or "").strip().lower() != "kafka":
        return None
    from querybus.registry.backends.kafka import DEFAULT_TOPIC

    return topics.prefix + DEFAULT_TOPIC


def default_reply_topic(topics: TopicNames, principal: str) -> str:
    """``<response topic>.<principal name>``: a client principal's own reply topic."""
    name = _principal_name(principal)
    if not _SEGMENT.fullmatch(name):
        raise typer.BadParameter(
            f"{name!r} cannot name a reply topic (letters, digits, '_' and '-' only); "
            "give one with --reply-topic"
        )
    return f"{topics.response}.{name}"


def adapter_acls(
    principal: str, topics: TopicNames, group: str, registry: str | None = None
) -> list[Acl]:
    """An adapter: consume requests in its group, write every reply and record topic."""
    acls = [
        *_topic(principal, topics.request, _READ, _DESCRIBE),
        Acl(principal, ResourceType.GROUP, group, _READ),
        # Replies: the shared response topic and every reply topic under it.
        *_topic(principal, topics.response, _WRITE, _DESCRIBE),
        *_prefixed(principal, topics.response + ".", _WRITE, _DESCRIBE),
        *_topic(principal, topics.error, _WRITE, _DESCRIBE),
        *_topic(principal, topics.dead_letter, _WRITE, _DESCRIBE),
        *_topic(principal, topics.audit, _WRITE, _DESCRIBE),
        *_topic(principal, topics.routing_decisions, _WRITE, _DESCRIBE),
        # Its inbox (interactive transactions): created at start, read
        # without a group, never deleted by its own adapter; the inboxes of
        # adapters that are gone are listed, read and deleted by the others'
        # sweep (docs/transactions.md#inbox-topics).
        *_prefixed(
            principal,
            topics.inbox_prefix,
            AclOperation.CREATE,
            _READ,
            _WRITE,
            _DESCRIBE,
            AclOperation.DELETE,
        ),
    ]
    if registry is not None:
        # Registers itself (writes) and reads the table back (sync markers).
        acls += _topic(principal, registry, _READ, _WRITE, _DESCRIBE)
    return sorted(set(acls))


def client_acls(
    principal: str, topics: TopicNames, reply_topic: str | None = None, registry: str | None = None
) -> list[Acl]:
    """A client: send requests, read only its own reply topic (no group: the
    reply partition is assigned manually)."""
    reply = reply_topic or default_reply_topic(topics, principal)
    if not reply.startswith(topics.response + "."):
        # The shared response topic itself would let it read everyone's replies.
        raise typer.BadParameter(f"reply topic {reply!r} must start with {topics.response + '.'!r}")
    acls = [
        *_topic(principal, topics.request, _WRITE, _DESCRIBE),
        *_topic(principal, reply, _READ, _DESCRIBE),
        # The requests of its interactive transactions go to the holding
        # adapter's inbox (it reads nothing there).
        *_prefixed(principal, topics.inbox_prefix, _WRITE, _DESCRIBE),
    ]
    if registry is not None:
        acls += _topic(principal, registry, _READ, _DESCRIBE)
    return sorted(set(acls))


def tenant_acls(
    principal: str, topics: TopicNames, tenant: str, registry: str | None = None
) -> list[Acl]:
    """One of a tenant's principals: every reply topic under ``<response>.<tenant>.``."""
    if not _SEGMENT.fullmatch(tenant):
        raise typer.BadParameter(
            f"tenant {tenant!r} must be letters, digits, '_' and '-' only (it names topics)"
        )
    _principal_name(principal)
    acls = [
        *_topic(principal, topics.request, _WRITE, _DESCRIBE),
        *_prefixed(principal, f"{topics.response}.{tenant}.", _READ, _DESCRIBE),
        *_prefixed(principal, topics.inbox_prefix, _WRITE, _DESCRIBE),
    ]
    if registry is not None:
        acls += _topic(principal, registry, _READ, _DESCRIBE)
    return sorted(set(acls))


# kafka-acls.sh spells operations in CamelCase.
_TOOL_OPERATION = {
    AclOperation.ALL: "All",
    AclOperation.READ: "Read",
    AclOperation.WRITE: "Write",
    AclOperation.CREATE: "Create",
    AclOperation.DELETE: "Delete",
    AclOperation.ALTER: "Alter",
    AclOperation.DESCRIBE: "Describe",
    AclOperation.CLUSTER_ACTION: "ClusterAction",
    AclOperation.DESCRIBE_CONFIGS: "DescribeConfigs",
    AclOperation.ALTER_CONFIGS: "AlterConfigs",
    AclOperation.IDEMPOTENT_WRITE: "IdempotentWrite",
}
_TOOL_RESOURCE = {
    ResourceType.TOPIC: "--topic",
    ResourceType.GROUP: "--group",
    ResourceType.TRANSACTIONAL_ID: "--transactional-id",
}


def kafka_acls_command(acl: Acl, bootstrap: str, *, action: str = "--add") -> str:
    """``acl`` as one ``kafka-acls.sh`` command line (``--add`` or ``--remove``)."""
    side = "allow" if acl.permission == "ALLOW" else "deny"
    args = [
        "kafka-acls.sh",
        "--bootstrap-server",
        bootstrap,
        "--command-config",
        "admin.properties",
        action,
        *(["--force"] if action == "--remove" else []),
        f"--{side}-principal",
        acl.principal,
        f"--{side}-host",
        acl.host,
        "--operation",
        _TOOL_OPERATION[acl.operation],
    ]
    if acl.resource_type == ResourceType.CLUSTER:
        args.append("--cluster")
    else:
        args += [_TOOL_RESOURCE[acl.resource_type], acl.resource_name]
    args += ["--resource-pattern-type", acl.pattern.lower()]
    return shlex.join(args)


def _as_dict(acl: Acl) -> dict[str, str]:
    return {
        "principal": acl.principal,
        "host": acl.host,
        "operation": str(acl.operation),
        "permission": str(acl.permission),
        "resource_type": str(acl.resource_type),
        "resource_name": acl.resource_name,
        "pattern": str(acl.pattern),
    }


async def _change(bus: BusSettings, acls: Sequence[Acl], *, delete: bool) -> int:
    transport = connect(
        bus.bootstrap_servers, client_id="querybus-acl", security=bus.security, request_timeout=15.0
    )
    try:
        if not isinstance(transport, KafkaTransport):
            raise QueryBusError("ACLs need a Kafka cluster (KAFKA_BOOTSTRAP_SERVERS)")
        if delete:
            return len(await transport.delete_acls(acls))
        await transport.create_acls(acls)
        return len(acls)
    finally:
        await transport.close()


def _emit(acls: list[Acl], *, apply: bool, delete: bool, as_json: bool) -> None:
    if apply and delete:
        raise typer.BadParameter("--apply and --delete exclude each other")
    bus = BusSettings.from_env()
    if apply or delete:
        configure_client_logging()
        try:
            count = asyncio.run(_change(bus, acls, delete=delete))
        except QueryBusError as exc:
            console(stderr=True).print(f"[red]acl error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None
        verb = "deleted" if delete else "applied"
        console(stderr=True).print(
            f"{verb} {count} ACL{'' if count == 1 else 's'} on {escape(bus.bootstrap_servers)}",
            highlight=False,
        )
    # print(), not rich: every line must reach a pipe whole, as a command.
    if as_json:
        print(json.dumps([_as_dict(a) for a in acls], indent=2))
        return
    action = "--remove" if delete else "--add"
    for acl in acls:
        print(kafka_acls_command(acl, bus.bootstrap_servers, action=action))


Principal = Annotated[
    str,
    typer.Option("--principal", help="The principal, e.g. User:alice (SASL username or mTLS CN)."),
]
Apply = Annotated[
    bool,
    typer.Option(
        "--apply", help="Create the ACLs through the admin API (KAFKA_* security, as an admin)."
    ),
]
Delete = Annotated[bool, typer.Option("--delete", help="Delete exactly these ACLs instead.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the ACLs as a JSON list.")]


@acl_app.command(
    "adapter",
    help="An adapter: READ the request topic in its group (QUERYBUS_GROUP_ID); WRITE and "
    "DESCRIBE the response topic, every reply topic under it (prefixed), the error, "
    "dead-letter, audit and routing-decision topics; CREATE, READ, WRITE, DESCRIBE and "
    "DELETE the inbox topics (prefixed: its own, and those of gone adapters, which it "
    "sweeps); the registry topic when QUERYBUS_REGISTRY=kafka.",
)
def adapter(
    principal: Principal,
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group (default QUERYBUS_GROUP_ID).")
    ] = None,
    apply: Apply = False,
    delete: Delete = False,
    as_json: AsJson = False,
) -> None:
    topics = BusSettings.from_env().topics
    acls = adapter_acls(
        principal,
        topics,
        group or AdapterSettings.from_env().group_id,
        registry_topic(topics),
    )
    _emit(acls, apply=apply, delete=delete, as_json=as_json)


@acl_app.command(
    "client",
    help="A client: WRITE and DESCRIBE the request topic; READ and DESCRIBE its own reply "
    "topic only (literal; default <response topic>.<principal name>); no group, as its reply "
    "partition is assigned, not balanced; READ the registry topic when QUERYBUS_REGISTRY=kafka.",
)
def client(
    principal: Principal,
    reply_topic: Annotated[
        str | None,
        typer.Option(
            "--reply-topic",
            help="Its reply topic (default <response topic>.<principal name>); the "
            "client's QUERYBUS_REPLY_TOPIC.",
        ),
    ] = None,
    apply: Apply = False,
    delete: Delete = False,
    as_json: AsJson = False,
) -> None:
    topics = BusSettings.from_env().topics
    acls = client_acls(principal, topics, reply_topic, registry_topic(topics))
    _emit(acls, apply=apply, delete=delete, as_json=as_json)


@acl_app.command(
    "tenant",
    help="One principal of a tenant: WRITE the request topic; READ every reply topic under "
    "<response topic>.<tenant>. (prefixed), so the tenant's clients share their reply topics "
    "(each sets QUERYBUS_REPLY_TOPIC to one of them, e.g. <response topic>.<tenant>.replies).",
)
def tenant(
    principal: Principal,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant's name (one topic segment).")],
    apply: Apply = False,
    delete: Delete = False,
    as_json: AsJson = False,
) -> None:
    topics = BusSettings.from_env().topics
    acls = tenant_acls(principal, topics, tenant, registry_topic(topics))
    _emit(acls, apply=apply, delete=delete, as_json=as_json)
