"""Kernel timestamps of bytes on the loopback wire, for the commit -> POST
benchmark.  Both ends of that measure are taken by the kernel as the bytes
arrive (SO_TIMESTAMPNS), so neither depends on when the benchmark's own
processes get a core:

- PgWire: a minimal PostgreSQL client (simple query protocol, trust
  authentication, over TCP) that reports when the server's answer to each
  statement reached its socket, which on loopback is the moment the server
  sent it;
- Tap: a relay in front of the API test server that records when each
  chunk of bytes the worker sends reached it.
"""
import selectors
import socket
import struct
import threading

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def enable_timestamps(sock):
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def recv_stamped(sock, size=65536):
    """Bytes from sock and the kernel's arrival time of the first of them,
    in ms since the epoch (None if the kernel gave none)."""
    data, ancdata, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(16))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", payload[:16])
            return data, sec * 1000.0 + nsec / 1e6
    return data, None


class PgWire:
    """Just enough of the frontend/backend protocol to run statements."""

    def __init__(self, host, port, user, dbname):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_timestamps(self.sock)
        params = f"user\0{user}\0database\0{dbname}\0\0".encode()
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        self._read_until_ready()

    def _read_until_ready(self):
        """Messages up to ReadyForQuery: (list of (type, body), arrival ms)."""
        buf, first_ts, messages = b"", None, []
        while True:
            data, ts = recv_stamped(self.sock)
            if not data:
                raise ConnectionError("the server closed the connection")
            if first_ts is None:
                first_ts = ts
            buf += data
            while len(buf) >= 5:
                kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
                if len(buf) < 1 + length:
                    break
                body, buf = buf[5:1 + length], buf[1 + length:]
                if kind == b"E":
                    raise RuntimeError(f"server error: {body!r}")
                if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                    raise RuntimeError("only trust authentication is supported")
                messages.append((kind, body))
                if kind == b"Z":
                    return messages, first_ts

    def query(self, sql):
        """Run one statement (its own transaction); returns the first column
        of its rows as text and when the server's answer arrived (ms)."""
        sql = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(sql)) + sql)
        messages, ts = self._read_until_ready()
        values = []
        for kind, body in messages:
            if kind == b"D":
                length = struct.unpack("!i", body[2:6])[0]
                values.append(body[6:6 + length].decode())
        return values, ts

    def close(self):
        self.sock.close()


class Tap:
    """A TCP relay: 127.0.0.1:port -> target.  Records the kernel arrival
    time and size of every chunk clients send through it."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chunks = []   # (arrival ms, bytes)
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.2):
                if key.data is None:
                    client, _ = self.listener.accept()
                    enable_timestamps(client)
                    upstream = socket.create_connection(self.target)
                    self.selector.register(client, selectors.EVENT_READ, (upstream, True))
                    self.selector.register(upstream, selectors.EVENT_READ, (client, False))
                    continue
                peer, from_client = key.data
                try:
                    if from_client:
                        data, ts = recv_stamped(key.fileobj)
                        if data:
                            with self.lock:
                                self.chunks.append((ts, len(data)))
                    else:
                        data = key.fileobj.recv(65536)
                    if data:
                        peer.sendall(data)
                        continue
                except OSError:
                    pass
                for sock in (key.fileobj, peer):
                    try:
                        self.selector.unregister(sock)
                    except (KeyError, ValueError):
                        pass
                    sock.close()

    def sent_before(self, ms, window_ms=50.0):
        """When the last chunk that arrived at or before ms arrived."""
        with self.lock:
            times = [ts for ts, _ in self.chunks if ts is not None and ms - window_ms <= ts <= ms]
        return max(times) if times else None

    def stop(self):
        self.stopping = True
        self.thread.join()
