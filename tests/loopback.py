"""A file served over loopback HTTP (127.0.0.1) for the downloader's tests: Range requests answered with 206, and a
first answer that can be cut off part-way, as a dropped connection does."""
import http.server
import socket
import threading


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a connection to it is refused, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FileServer:
    """Serves `payload` at /<name>. `cut_after`: the first answer stops after that many bytes (the connection is
    closed mid-body). `ranges`: whether Range is honoured. `requests`: each request's Range header (or None)."""

    def __init__(self, payload: bytes, name: str = "model.safetensors", cut_after: int | None = None,
                 ranges: bool = True):
        self.payload, self.name, self.cut_after, self.ranges = payload, name, cut_after, ranges
        self.requests: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/" + outer.name:
                    self.send_error(404)
                    return
                wanted = self.headers.get("Range")
                outer.requests.append(wanted)
                start = 0
                if wanted and outer.ranges:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(outer.payload):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                else:
                    self.send_response(200)
                body = outer.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None and len(outer.requests) == 1:
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
