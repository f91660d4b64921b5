"""HTTP service of a trained style classifier: `python -m tools.style serve --model DIR`.

Standard-library `ThreadingHTTPServer` (no extra dependency); concurrent requests are merged into
shared forward passes by a MicroBatcher, whose single worker thread is the only user of the model.

- `GET /health` → {status, model, labels, max_batch, max_body_bytes}
- `POST /predict` with {input} or {question, answer} → {label, label_english, probabilities}
- `POST /predict_batch` with {items: [...]} → {predictions: [...]} (at most max_batch items)

Bad input never yields a 5xx: malformed JSON or fields → 400, batch over the limit → 400, body
over the limit → 413, neither Content-Length nor chunked encoding → 411, unknown path → 404, wrong
method → 405. Binds
127.0.0.1 unless told otherwise. Called by `make style-serve` and by `rewards/style.py` users.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from plugins.style.batching import MicroBatcher
from plugins.style.classifier import StyleClassifier, probability_record
from tools.style.data import StyleDataError, exchange_text

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8765
DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_BODY_BYTES = 1 << 20
# An oversized body is read and discarded up to this many times the limit before the 413, so the
# client sees the answer instead of a connection reset; beyond that the connection is just closed.
DRAIN_FACTOR = 8
# path -> (method, StyleService method)
ROUTES = {
    "/health": ("GET", "health"),
    "/predict": ("POST", "predict"),
    "/predict_batch": ("POST", "predict_batch"),
}


class RequestError(Exception):
    """A client error: HTTP status and a message for the JSON body."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class StyleService:
    """What the endpoints do, apart from HTTP framing."""

    def __init__(
        self,
        classifier: StyleClassifier,
        max_batch: int,
        max_body_bytes: int,
        max_wait_s: float = 0.005,
    ):
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self._batcher = MicroBatcher(
            classifier.predict_proba, max_items=max_batch, max_wait_s=max_wait_s, name="style-model"
        )

    def health(self) -> dict:
        return {
            "status": "ok",
            "model": str(self.classifier.model_dir),
            "labels": self.classifier.labels.to_spec(),
            "max_batch": self.max_batch,
            "max_body_bytes": self.max_body_bytes,
        }

    def _texts(self, items: list, prefix: str) -> list[str]:
        texts = []
        for i, item in enumerate(items):
            try:
                texts.append(exchange_text(item))
            except StyleDataError as e:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"{prefix}[{i}]: {e}" if prefix else str(e)
                ) from None
        return texts

    def _score(self, texts: list[str]) -> list[dict]:
        return [probability_record(self.classifier.labels, row) for row in self._batcher(texts)]

    def predict(self, request) -> dict:
        return self._score(self._texts([request], ""))[0]

    def predict_batch(self, request) -> dict:
        items = request.get("items") if isinstance(request, dict) else None
        if not isinstance(items, list):
            raise RequestError(HTTPStatus.BAD_REQUEST, "body must be an object with a list `items`")
        if len(items) > self.max_batch:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"{len(items)} items; at most {self.max_batch} per request"
            )
        return {"predictions": self._score(self._texts(items, "items"))}


class StyleRequestHandler(BaseHTTPRequestHandler):
    """HTTP framing: body limits, JSON parsing, routing, error statuses."""

    server_version = "dramakit-style/1"
    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections
    timeout = 30  # a stalled client frees its thread

    @property
    def service(self) -> StyleService:
        return self.server.service

    def __getattr__(self, name: str):
        # Any other method (PUT, DELETE, made-up ones) gets 405, not the base class's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, status: HTTPStatus, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _read_json(self):
        limit = self.service.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked(limit)
        else:
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                raise RequestError(
                    HTTPStatus.LENGTH_REQUIRED,
                    "Content-Length (or chunked transfer encoding) required",
                )
            try:
                length = int(length_header)
                if length < 0:
                    raise ValueError
            except ValueError:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}"
                ) from None
            if length > limit:
                self._discard(length)
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes; at most {limit}"
                )
            body = self.rfile.read(length)
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"body is not valid UTF-8 JSON ({type(e).__name__}: {e})"
            ) from None

    def _read_chunked(self, limit: int) -> bytes:
        """Decode a chunked body of at most `limit` bytes; a longer one is drained up to the cap and
        refused."""
        body, drained = bytearray(), 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError
            except ValueError:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"bad chunk size line {size_line[:40]!r}"
                ) from None
            if size == 0:
                break
            if len(body) + size > limit:
                drained += size
                if drained > DRAIN_FACTOR * limit:
                    raise RequestError(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"chunked body over {limit} bytes"
                    )
                self._discard(size)
            else:
                body += self.rfile.read(size)
            self.rfile.readline(1024)  # the CRLF closing the chunk
        while self.rfile.readline(1024).strip():  # trailer fields, up to the blank line
            pass
        if drained:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"chunked body over {limit} bytes"
            )
        return bytes(body)

    def _discard(self, length: int) -> None:
        remaining = min(length, DRAIN_FACTOR * self.service.max_body_bytes)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _dispatch(self) -> None:
        try:
            path = urlsplit(self.path).path
            if path not in ROUTES:
                raise RequestError(
                    HTTPStatus.NOT_FOUND,
                    f"no endpoint {path}; try /health, /predict, /predict_batch",
                )
            method, action = ROUTES[path]
            if self.command != method:
                self.close_connection = True
                self._send_json(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"error": f"{path} takes {method}"},
                    {"Allow": method},
                )
                return
            if action == "health":
                self._send_json(HTTPStatus.OK, self.service.health())
                return
            request = self._read_json()
            self._send_json(HTTPStatus.OK, getattr(self.service, action)(request))
        except RequestError as e:
            # The body may be unread or only partly read: this connection cannot carry another
            # request.
            self.close_connection = True
            self._send_json(e.status, {"error": str(e)})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            logger.exception("internal error on %s %s", self.command, self.path)
            self.close_connection = True
            self._send_json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the server log"}
            )


class StyleHTTPServer(ThreadingHTTPServer):
    """One thread per connection (daemon threads: shutdown never waits on a stalled client)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: StyleService):
        super().__init__(address, StyleRequestHandler)
        self.service = service


def serve(
    model_dir: str, host: str, port: int, max_batch: int, max_body_bytes: int, batch_size: int
) -> None:
    """Load the model and serve until SIGINT or SIGTERM."""
    classifier = StyleClassifier(model_dir, batch_size=batch_size)
    server = StyleHTTPServer((host, port), StyleService(classifier, max_batch, max_body_bytes))
    # SIGTERM ends serve_forever like Ctrl-C, so `kill PID` shuts down cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound_host, bound_port = server.server_address[:2]
    print(f"style classifier {model_dir} serving on http://{bound_host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
