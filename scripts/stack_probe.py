#!/usr/bin/env python3
"""Small standard-library helpers for scripts/services.sh.

Only the standard library is used, so the script works before the venv exists.

    stack_probe.py free-ports N          print N distinct free 127.0.0.1 TCP ports
    stack_probe.py port-free PORT        exit 0 when PORT can be bound on 127.0.0.1
    stack_probe.py kafka HOST:PORT [--timeout S] [--cafile F [--certfile F [--keyfile F]]]
                                         exit 0 once a Metadata request succeeds
                                         (at least one broker and a controller);
                                         with --cafile over TLS (--certfile: mutual TLS,
                                         the file may hold the key too)
    stack_probe.py etcd URL [--timeout S]
                                         exit 0 once GET URL/health says {"health":"true"}
    stack_probe.py cluster-id            print a new Kafka cluster id (base64url uuid4)
    stack_probe.py secret                print a new random password (hex, URL-safe)
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid


def free_ports(count: int) -> list[int]:
    # Keep every socket open until all are chosen, so the ports are distinct.
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections of a stopped server left in TIME_WAIT
        # must not make its port look taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf.extend(chunk)
    return bytes(buf)


def kafka_metadata(
    host: str, port: int, timeout: float = 3.0, tls: ssl.SSLContext | None = None
) -> tuple[int, int]:
    """Send one Metadata v4 request (the oldest version Kafka 4.0 still accepts).

    Returns (number of brokers, controller id).
    """
    client_id = b"querybus-services"
    correlation_id = 7
    # Request header v1: api_key, api_version, correlation_id, client_id (int16 string)
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    # Metadata v4 body: topics = null (-1: all topics), allow_auto_topic_creation = false
    body = struct.pack(">ib", -1, 0)
    payload = header + body
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def take_string() -> None:
        nonlocal pos
        length = take(">h")
        if length > 0:
            pos += length

    if take(">i") != correlation_id:
        raise ValueError("unexpected correlation id")
    take(">i")  # throttle_time_ms
    brokers = take(">i")
    for _ in range(max(brokers, 0)):
        take(">i")  # node_id
        take_string()  # host
        take(">i")  # port
        take_string()  # rack
    take_string()  # cluster_id
    controller = take(">i")
    return brokers, controller


def tls_context(cafile: str, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """A client TLS context trusting ``cafile`` only; with a client certificate
    when ``certfile`` is given (``keyfile`` may be omitted when it holds the key)."""
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile or None)
    return context


def wait_kafka(address: str, timeout: float, tls: ssl.SSLContext | None = None) -> bool:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            brokers, controller = kafka_metadata(host, int(port), tls=tls)
            if brokers >= 1 and controller >= 0:
                return True
            last = f"brokers={brokers} controller={controller}"
        except (OSError, ValueError, struct.error) as exc:
            last = repr(exc)
        time.sleep(0.25)
    print(f"kafka at {address} not ready after {timeout:.0f}s: {last}", file=sys.stderr)
    return False


def wait_etcd(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
                body = json.loads(resp.read().decode())
            if body.get("health") == "true":
                return True
            last = repr(body)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    print(f"etcd at {url} not healthy after {timeout:.0f}s: {last}", file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("free-ports")
    p.add_argument("count", type=int)
    p = sub.add_parser("port-free")
    p.add_argument("port", type=int)
    p = sub.add_parser("kafka")
    p.add_argument("address")
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--cafile")
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p = sub.add_parser("etcd")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=30.0)
    sub.add_parser("cluster-id")
    sub.add_parser("secret")
    args = parser.parse_args()

    if args.cmd == "free-ports":
        print(" ".join(str(p) for p in free_ports(args.count)))
        return 0
    if args.cmd == "port-free":
        return 0 if port_free(args.port) else 1
    if args.cmd == "kafka":
        tls = tls_context(args.cafile, args.certfile, args.keyfile) if args.cafile else None
        return 0 if wait_kafka(args.address, args.timeout, tls) else 1
    if args.cmd == "etcd":
        return 0 if wait_etcd(args.url, args.timeout) else 1
    if args.cmd == "cluster-id":
        print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return 0
    if args.cmd == "secret":
        print(secrets.token_hex(16))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
