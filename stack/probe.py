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

    probe.py cql-exec HOST PORT   each line of standard input as one CQL statement, in
                                  order (the secure stack's roles and grants)

Against a server that requires TLS and passwords (the secure stack), the environment
says how to connect:

    PROBE_CAFILE         TLS, the server's certificate checked against this PEM file
                         and the host connected to
    PROBE_USER           Kafka: SASL SCRAM-SHA-512 as this user; CQL: this role, for
                         Cassandra's PasswordAuthenticator
    PROBE_PASSWORD_FILE  the file holding that user's password
    PROBE_CERTFILE       with PROBE_CAFILE: the client certificate (PEM) to present to a
                         server that asks for one
    PROBE_KEYFILE        that certificate's private key (PEM)

Prints one line describing the answer and exits 0, or prints the reason and exits 1.
Standard library only, so it runs before anything else is installed.
"""

import base64
import hashlib
import hmac
import os
import secrets
import socket
import ssl
import struct
import sys

TIMEOUT_S = 3.0


def connect(host, port):
    """A TCP connection, in TLS when PROBE_CAFILE names the CA to check the server by."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    cafile = os.environ.get("PROBE_CAFILE")
    if not cafile:
        return sock
    context = ssl.create_default_context(cafile=cafile)
    certfile = os.environ.get("PROBE_CERTFILE")
    if certfile:
        context.load_cert_chain(certfile, os.environ.get("PROBE_KEYFILE"))
    return context.wrap_socket(sock, server_hostname=host)


def credentials():
    """(user, password) from PROBE_USER and PROBE_PASSWORD_FILE, or None."""
    user = os.environ.get("PROBE_USER")
    if not user:
        return None
    path = os.environ.get("PROBE_PASSWORD_FILE")
    if not path:
        raise ValueError("PROBE_USER is set without PROBE_PASSWORD_FILE")
    with open(path, encoding="utf-8") as f:
        return user, f.read().strip()


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


def kafka_request(sock, api_key, api_version, correlation_id, body):
    """One request (header v1) and its response, the reader after the correlation id."""
    client_id = b"tributary-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    r = Reader(recv_exact(sock, size))
    answered = r.take(">i")
    if answered != correlation_id:
        raise ValueError(f"unexpected correlation id {answered}")
    return r


def kafka_scram(sock, user, password):
    """SaslHandshake v1 and SaslAuthenticate v0 exchanges of SCRAM-SHA-512 (RFC 5802)."""
    mechanism = b"SCRAM-SHA-512"
    r = kafka_request(sock, 17, 1, 10, struct.pack(">h", len(mechanism)) + mechanism)
    if (error := r.take(">h")) != 0:
        raise ValueError(f"SaslHandshake refused SCRAM-SHA-512 (error {error})")

    def authenticate(correlation_id, message):
        r = kafka_request(sock, 36, 0, correlation_id, struct.pack(">i", len(message)) + message)
        error, why = r.take(">h"), r.string16()
        if error != 0:
            raise ValueError(f"SASL authentication failed (error {error}): {why}")
        answer = r.bytes32()
        if answer is None:
            raise ValueError("SASL authentication: the broker sent no SCRAM message")
        return answer.decode()

    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    saslname = user.replace("=", "=3D").replace(",", "=2C")  # RFC 5802, 5.1
    first_bare = f"n={saslname},r={nonce}"
    server_first = authenticate(11, f"n,,{first_bare}".encode())
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields["r"].startswith(nonce):
        raise ValueError("the server's SCRAM nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    final_without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_without_proof}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), auth_message, "sha512")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    server_final = authenticate(12, f"{final_without_proof},p={proof}".encode())
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha512")).decode()
    if server_final != f"v={expected}":
        raise ValueError("the server's SCRAM signature does not verify")


def kafka(host, port, min_brokers=1):
    # Metadata v4 (v0-v3 were removed in Kafka 4.0 by KIP-896), request header v1.
    body = struct.pack(">i?", -1, False)  # all topics, no auto-creation
    with connect(host, port) as sock:
        if login := credentials():
            kafka_scram(sock, *login)
        r = kafka_request(sock, 3, 4, 1, body)
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


def cql_session(sock):
    """STARTUP, and the password exchange when the server asks for one (AUTHENTICATE)."""

    def string16(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    startup = struct.pack(">h", 1) + string16("CQL_VERSION") + string16("3.0.0")
    sock.sendall(cql_frame(0x01, startup))
    opcode, _ = cql_read(sock)
    if opcode == 0x03:  # AUTHENTICATE: SASL PLAIN, "\0user\0password"
        login = credentials()
        if login is None:
            raise ValueError("the server asks for a password: set PROBE_USER and PROBE_PASSWORD_FILE")
        token = b"\0" + login[0].encode() + b"\0" + login[1].encode()
        sock.sendall(cql_frame(0x0F, struct.pack(">i", len(token)) + token))
        opcode, _ = cql_read(sock)
        if opcode != 0x10:
            raise ValueError(f"expected AUTH_SUCCESS, got opcode 0x{opcode:02x}")
    elif opcode != 0x02:
        raise ValueError(f"expected READY after STARTUP, got opcode 0x{opcode:02x}")


def cql_send(sock, query, consistency, stream):
    """One QUERY on an open session; the RESULT's body."""
    query = query.encode()
    sock.sendall(cql_frame(0x07, struct.pack(">i", len(query)) + query + struct.pack(">hB", consistency, 0), stream))
    opcode, body = cql_read(sock)
    if opcode != 0x08:
        raise ValueError(f"expected RESULT, got opcode 0x{opcode:02x}")
    return body


def cql_query(host, port, query, consistency):
    """One QUERY on a new session; returns a reader positioned after the Rows kind."""
    with connect(host, port) as sock:
        cql_session(sock)
        body = cql_send(sock, query, consistency, stream=1)
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


def cql_exec(host, port):
    statements = [line.strip() for line in sys.stdin if line.strip()]
    with connect(host, port) as sock:
        cql_session(sock)
        for stream, statement in enumerate(statements, start=1):
            try:
                cql_send(sock, statement, CONSISTENCY_ONE, stream)
            except ValueError as e:
                # The statement as sent, up to its first quote: passwords stay out.
                raise ValueError(f"{statement.split(chr(39))[0]}…: {e}") from None
    return f"{len(statements)} statement(s) applied"


def main(argv):
    # name: (probe, whether it takes PORT HOST... rather than HOST PORT, most arguments)
    probes = {
        "kafka": (kafka, False, 3),
        "cql": (cql, False, 2),
        "cql-all": (cql_all, False, 2),
        "cql-schema": (cql_schema, True, None),
        "cql-hints": (cql_hints, True, None),
        "cql-exec": (cql_exec, False, 2),
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
