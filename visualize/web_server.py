"""`pointseg view --web`: serve the browser viewer from the machine that holds the predictions.

A standard-library `ThreadingHTTPServer` serves three things, all built once at start:

    /           the page of `visualize.web_page` (the very page `--export-html` writes), with its
                data fetched from:
    /data.bin   the binary arrays (gzip-compressed on the wire when the browser accepts it:
                labels compress well, which matters through an ssh tunnel)
    /meta.json  the page's description (for scripts)

The page needs nothing else (no CDN, no websocket): once loaded, every interaction happens in the
browser. The server binds to 127.0.0.1 unless told otherwise, prints the URL and the `ssh -L`
line to reach it from a laptop, and treats a tab that disconnects mid-transfer as routine. Bound
to loopback, it answers only requests addressed to localhost / 127.0.0.1 (the Host header), so a
web page elsewhere cannot read it through DNS rebinding.
"""

from __future__ import annotations

import errno
import getpass
import gzip
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pointseg.errors import ConfigError
from visualize.web_data import Payload
from visualize.web_page import render_page

Print = Callable[[str], None]
DATA_URL = "data.bin"
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Content:
    def __init__(self, payload: Payload) -> None:
        self.page = render_page(payload, data_url=DATA_URL).encode("utf-8")
        self.data = payload.blob
        self.data_gz = gzip.compress(payload.blob, compresslevel=1, mtime=0)
        self.meta = json.dumps(payload.meta).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server_version = "pointseg-view"
    protocol_version = "HTTP/1.1"
    timeout = 60  # a client that stops talking releases its thread

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._reply(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._reply(head=True)

    def _reply(self, head: bool) -> None:
        content: _Content = self.server.content  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        if not self._host_ok():
            # DNS rebinding: a web page elsewhere must not read a loopback-only viewer
            body = b"pointseg view: open it as http://localhost:<port>/ (ssh -L), not by name\n"
            self.send_response(403)
            self._send(body, "text/plain; charset=utf-8", None, head)
            return
        encoding = None
        if path in ("/", "/index.html"):
            body, kind = content.page, "text/html; charset=utf-8"
        elif path == "/" + DATA_URL:
            kind = "application/octet-stream"
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                body, encoding = content.data_gz, "gzip"
            else:
                body = content.data
        elif path == "/meta.json":
            body, kind = content.meta, "application/json"
        else:
            body, kind = b"not found: pointseg view serves / only\n", "text/plain; charset=utf-8"
            self.send_response(404)
            self._send(body, kind, None, head)
            return
        self.send_response(200)
        self._send(body, kind, encoding, head)

    def _host_ok(self) -> bool:
        """Loopback servers answer only requests addressed to a loopback name (Host header)."""
        if not getattr(self.server, "loopback", False):
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host[1 : host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in ("localhost", "127.0.0.1", "::1") or name.startswith("127.")

    def _send(self, body: bytes, kind: str, encoding: str | None, head: bool) -> None:
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except DISCONNECTS:  # the tab went away mid-transfer: nothing to do
            self.close_connection = True

    def log_message(self, fmt: str, *args) -> None:
        if getattr(self.server, "verbose", False):
            sys.stderr.write(f"[view] {self.address_string()} {fmt % args}\n")


class ViewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart right after Ctrl-C finds the port free

    def __init__(self, addr, content: _Content, verbose: bool = False) -> None:
        self.content = content
        self.verbose = verbose
        self.loopback = is_loopback(addr[0])
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = family
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            return
        super().handle_error(request, client_address)  # prints the traceback, keeps serving

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def _free_port(host: str) -> int | None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    except OSError:
        return None


def make_server(
    payload: Payload, host: str = "127.0.0.1", port: int = 8080, verbose: bool = False
) -> ViewServer:
    """Bind the viewer's server (not yet serving). Port 0 picks a free one.

    Raises ConfigError with a suggestion when the port is taken or the address is not ours."""
    content = _Content(payload)
    try:
        return ViewServer((host, port), content, verbose=verbose)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            free = _free_port(host)
            hint = f"--port {free}" if free else "another --port"
            raise ConfigError(
                f"--web: port {port} on {host} is already in use (another `pointseg view --web`, "
                f"a notebook or a web server?); use {hint}, or --port 0 for any free port"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(
                f"--web: not allowed to listen on {host}:{port} (ports below 1024 need root); "
                "use a port above 1024, e.g. --port 8080"
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise ConfigError(
                f"--web: {host!r} is not an address of this machine; use --host 127.0.0.1 (default) "
                "or --host 0.0.0.0 for every interface"
            ) from exc
        raise ConfigError(f"--web: cannot listen on {host}:{port}: {exc}") from exc


def access_lines(server: ViewServer, host: str) -> list[str]:
    """What to print at start: the URL, the ssh tunnel from a laptop, a warning off loopback."""
    port = server.port
    shown = "localhost" if is_loopback(host) else host
    if shown in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    url_host = f"[{shown}]" if ":" in shown else shown
    lines = [f"[view] serving on http://{url_host}:{port}/  (Ctrl-C to stop)"]
    try:
        user = getpass.getuser()
    except Exception:  # no user name in containers without a passwd entry
        user = "you"
    machine = socket.gethostname() or "this-server"
    lines.append(
        f"[view] from a laptop: ssh -N -L {port}:localhost:{port} {user}@{machine}   "
        f"then open http://localhost:{port}/"
    )
    if not is_loopback(host):
        lines.append(
            f"[view] WARNING: --host {host} exposes the viewer (and the room's points) to every "
            "machine that can reach this one on port "
            f"{port}, with no password; prefer the default 127.0.0.1 and the ssh -L line above"
        )
    return lines


def serve(
    payload: Payload,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    print_fn: Print | None = print,
    verbose: bool = False,
    ready: threading.Event | None = None,
) -> None:
    """Serve until Ctrl-C (or `server.shutdown()` from another thread)."""
    say = print_fn or (lambda s: None)
    server = make_server(payload, host, port, verbose=verbose)
    for line in access_lines(server, host):
        say(line)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        say("[view] stopped")
    finally:
        server.server_close()
