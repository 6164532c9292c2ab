#!/usr/bin/env python3
"""Readiness probes that speak each server's own wire protocol.

An open TCP port is not readiness: Kafka accepts connections before its broker has
registered with the controller, Cassandra before its CQL layer answers. These probes
ask a real question and only succeed on a real answer:

    probe.py kafka HOST PORT [N]  Kafka Metadata request (v4); ready when >= N brokers
                                  (default 1) are registered
    probe.py cql HOST PORT        CQL v4 STARTUP + "SELECT release_version FROM system.local"
    probe.py cql-all HOST PORT    a read of system_distributed (replication factor 3) at
                                  consistency ALL: ready when every replica of the ring
                                  is up and normal (a joining or down node fails it)
    probe.py cql-schema PORT HOST...
                                  each node's own schema version (system.local): ready
                                  when every node reports the same one (schema agreement,
                                  which a CREATE or DROP awaits)
    probe.py cql-hints PORT HOST...
                                  ready when no node holds hints (writes for a node that
                                  was down, replayed to it once it is back) nor is
                                  replaying them

Prints one line describing the answer and exits 0, or prints the reason and exits 1.
Standard library only, so it runs before anything else is installed.
"""

import socket
import struct
import sys

TIMEOUT_S = 3.0


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf.extend(chunk)
    return bytes(buf)


class Reader:
    """Cursor over a big-endian response body."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def string16(self):
        n = self.take(">h")
        if n < 0:
            return None
        value = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return value

    def bytes32(self):
        n = self.take(">i")
        if n < 0:
            return None
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value


def kafka(host, port, min_brokers=1):
    # Metadata v4 (v0-v3 were removed in Kafka 4.0 by KIP-896), request header v1.
    client_id = b"tributary-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">i?", -1, False)  # all topics, no auto-creation
    request = header + body
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        r = Reader(recv_exact(sock, size))
    correlation_id = r.take(">i")
    if correlation_id != 1:
        raise ValueError(f"unexpected correlation id {correlation_id}")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        broker_host = r.string16()
        broker_port = r.take(">i")
        r.string16()  # rack
        brokers.append(f"{node_id}@{broker_host}:{broker_port}")
    cluster_id = r.string16()
    if len(brokers) < min_brokers:
        raise ValueError(f"{len(brokers)} of {min_brokers} brokers registered")
    return f"kafka cluster {cluster_id}, brokers {', '.join(brokers)}"


def cql_frame(opcode, body, stream=0):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(sock):
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if version != 0x84:
        raise ValueError(f"unexpected CQL response version 0x{version:02x}")
    body = recv_exact(sock, length)
    if opcode == 0x00:  # ERROR: int code + string message
        r = Reader(body)
        code = r.take(">i")
        raise ValueError(f"CQL error 0x{code:04x}: {r.string16()}")
    return opcode, body


CONSISTENCY_ONE = 0x0001
CONSISTENCY_ALL = 0x0005


def cql_query(host, port, query, consistency):
    """STARTUP, then one QUERY; returns a reader positioned after the Rows kind."""

    def string16(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    startup = struct.pack(">h", 1) + string16("CQL_VERSION") + string16("3.0.0")
    query = query.encode()
    query_body = struct.pack(">i", len(query)) + query + struct.pack(">hB", consistency, 0)
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(cql_frame(0x01, startup))
        opcode, _ = cql_read(sock)
        if opcode != 0x02:
            raise ValueError(f"expected READY after STARTUP, got opcode 0x{opcode:02x}")
        sock.sendall(cql_frame(0x07, query_body, stream=1))
        opcode, body = cql_read(sock)
    if opcode != 0x08:
        raise ValueError(f"expected RESULT, got opcode 0x{opcode:02x}")
    r = Reader(body)
    if r.take(">i") != 0x0002:
        raise ValueError("expected a Rows result")
    return r


def cql_all(host, port):
    # system_distributed has replication factor 3: on a three-node ring every range lives
    # on every node, so a read at ALL needs all three up and owning their tokens.
    cql_query(host, port, "SELECT id FROM system_distributed.repair_history LIMIT 1", CONSISTENCY_ALL)
    return "every replica answered at consistency ALL"


def rows(r):
    """Skips a Rows result's metadata; the row count, the reader at the first row."""
    flags = r.take(">i")
    columns = r.take(">i")
    if flags & 0x0002:  # has_more_pages: paging state precedes the specs
        r.bytes32()
    if flags & 0x0001:  # global table spec
        r.string16()
        r.string16()
    for _ in range(columns):
        if not flags & 0x0001:
            r.string16()
            r.string16()
        r.string16()  # column name
        r.take(">h")  # type id (the native types asked for here take no parameters)
    return r.take(">i")


def first_row(r, columns=1):
    """The first row's first `columns` values of a Rows result, as bytes."""
    if rows(r) < 1:
        raise ValueError("no row")
    values = [r.bytes32() for _ in range(columns)]
    if any(v is None for v in values):
        raise ValueError("a null value")
    return values


def first_value(r):
    return first_row(r)[0]


def cql(host, port):
    r = cql_query(host, port, "SELECT release_version FROM system.local", CONSISTENCY_ONE)
    return f"cassandra {first_value(r).decode()}"


def cql_schema(port, *hosts):
    versions = {}
    for host in hosts:
        r = cql_query(host, port, "SELECT schema_version FROM system.local", CONSISTENCY_ONE)
        versions[host] = first_value(r).hex()
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{h} {v[:8]}" for h, v in versions.items())
        raise ValueError(f"schema versions disagree: {listed}")
    return f"{len(hosts)} nodes agree on schema version {next(iter(versions.values()))[:8]}"


def cql_hints(port, *hosts):
    # pending_hints lists the closed hint files waiting for dispatch; a file being
    # replayed has left that queue, so the dispatcher's own pool must be idle too.
    busy = []
    for host in hosts:
        r = cql_query(host, port, "SELECT address FROM system_views.pending_hints", CONSISTENCY_ONE)
        if (n := rows(r)) > 0:
            busy.append(f"{host} holds hints for {n} node(s)")
        r = cql_query(
            host,
            port,
            "SELECT active_tasks, pending_tasks FROM system_views.thread_pools WHERE name = 'HintsDispatcher'",
            CONSISTENCY_ONE,
        )
        active, pending = (int.from_bytes(v, "big") for v in first_row(r, 2))
        if active or pending:
            busy.append(f"{host} is replaying hints ({active} active, {pending} queued)")
    if busy:
        raise ValueError(", ".join(busy))
    return "no hints pending or replaying"


def main(argv):
    # name: (probe, whether it takes PORT HOST... rather than HOST PORT, most arguments)
    probes = {
        "kafka": (kafka, False, 3),
        "cql": (cql, False, 2),
        "cql-all": (cql_all, False, 2),
        "cql-schema": (cql_schema, True, None),
        "cql-hints": (cql_hints, True, None),
    }
    name, args = (argv[1], argv[2:]) if len(argv) > 1 else (None, [])
    if name not in probes:
        print(__doc__, file=sys.stderr)
        return 2
    probe, port_first, most = probes[name]
    try:
        if port_first:
            call_args = [int(args[0]), *args[1:]]
        else:
            call_args = [args[0], *(int(a) for a in args[1:])]
        if len(args) < 2 or (most is not None and len(args) > most):
            raise IndexError
    except (IndexError, ValueError):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(probe(*call_args))
        return 0
    except (OSError, ValueError, struct.error) as e:
        print(f"{name} not ready: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
