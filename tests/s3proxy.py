"""A TCP proxy in front of the S3-compatible server that a test can switch into an outage.

Real sockets, real HTTP: boto3 talks to the proxy exactly as it talks to S3, and the proxy either
pipes the bytes through or behaves like a broken endpoint:

- FORWARD: a working endpoint.
- RESET:   every connection is accepted and reset at once (a dead backend behind a balancer).
- ERROR:   every request is answered `503 Service Unavailable` with an S3 error body (throttling,
           an overloaded or failing endpoint).
- HANG:    connections are accepted and never answered (a black hole; only timeouts end it).
- THROTTLE: every DeleteObjects is answered with one status and S3 error code (`503 SlowDown`
           by default; `throttle_deletes(status, code)`), every other request goes through, so
           the bucket itself still answers (a throttled or failing delete path). `deletes`
           counts the DeleteObjects requests answered so.

Switching mode also cuts the connections already open, so keep-alive connections boto3 holds
cannot slip past an outage. Usable from any test or script: `with S3Proxy(url) as proxy: ...`.
"""

import select
import socket
import struct
import threading
from urllib.parse import urlsplit

FORWARD, RESET, ERROR, HANG, THROTTLE = "forward", "reset", "error", "hang", "throttle"

_ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_ERROR_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
    b"Content-Length: "
    + str(len(_ERROR_BODY)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + _ERROR_BODY
)


class S3Proxy:
    def __init__(self, upstream_url: str):
        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname, upstream.port)
        self.mode = FORWARD
        self.connections = 0  # accepted client connections, whatever the mode
        self.deletes = 0  # DeleteObjects requests answered in THROTTLE mode
        self._answer = _error_response(503, "SlowDown")
        self._only_with = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="s3proxy", daemon=True)

    def start(self) -> "S3Proxy":
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        self._listener.close()
        self._cut_open_connections()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def throttle_deletes(self, status: int = 503, code: str = "SlowDown", only_with=None):
        """`only_with` (bytes): answer only the DeleteObjects whose body holds it; forward the
        rest (a server that rejects a request for one key it carries)."""
        self._answer = _error_response(status, code)
        self._only_with = only_with
        self.set_mode(THROTTLE)

    def set_mode(self, mode: str):
        if mode not in (FORWARD, RESET, ERROR, HANG, THROTTLE):
            raise ValueError(f"unknown proxy mode {mode!r}")
        self.mode = mode
        self._cut_open_connections()

    # --- internals ---------------------------------------------------------------------------

    def _serve(self):
        while not self._stopped.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        mode = self.mode
        if mode == RESET:
            _reset(client)
            return
        self._track(client)
        try:
            if mode == ERROR:
                # Read the whole request first: closing on unread bytes would send a reset
                # that can overtake the 503.
                _read_request(client)
                client.sendall(_ERROR_RESPONSE)
                client.shutdown(socket.SHUT_WR)
            elif mode == THROTTLE:
                self._throttle(client)
            elif mode == HANG:
                self._stopped.wait()  # until the test ends or the mode changes (cuts `client`)
            else:
                upstream = socket.create_connection(self.upstream, timeout=10)
                self._track(upstream)
                try:
                    _pipe(client, upstream)
                finally:
                    self._untrack(upstream)
        except (OSError, ValueError):  # ValueError: select() on a socket another thread cut
            pass
        finally:
            self._untrack(client)

    def _throttle(self, client):
        # One request per connection: answered here when it is a DeleteObjects (POST ...?delete),
        # otherwise sent upstream with "Connection: close" and its answer relayed to the end.
        request = _read_request(client)
        if not request:
            return
        head, _, body = request.partition(b"\r\n\r\n")
        marked = self._only_with is None or self._only_with in body
        if b"?delete" in request.split(b"\r\n", 1)[0] and marked:
            self.deletes += 1
            client.sendall(self._answer)
            return
        lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
        upstream = socket.create_connection(self.upstream, timeout=10)
        self._track(upstream)
        try:
            upstream.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        finally:
            self._untrack(upstream)

    def _track(self, sock):
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock):
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def _cut_open_connections(self):
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)


def _reset(sock):
    # SO_LINGER 0: close with RST, so the client sees "connection reset", not a clean EOF.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _error_response(status: int, code: str) -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>Answered by the test proxy.</Message></Error>"
    ).encode()
    return (
        f"HTTP/1.1 {status} Test\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _read_request(sock) -> bytes:
    """One whole request (head and body), or b"" when the client went away first."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        body += chunk
    return head + b"\r\n\r\n" + body


def _pipe(a, b):
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 1.0)
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)
