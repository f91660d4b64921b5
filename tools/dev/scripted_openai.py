"""A scripted OpenAI-compatible chat server: the stand-in for a teacher API we cannot reach.

It answers `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1. What it answers is
decided by a policy: a function from the request body (and how many times this same request
was seen) to a `Reply`: a message (text and/or tool calls), an HTTP error status, a delay
longer than the client's timeout, or a dropped connection. Tests use it for teacher
behaviours a tiny model cannot produce on demand; `make bench` uses it with a fixed latency.

    python -m tools.dev.scripted_openai --port 8100 --latency 0.2   # answers audio_sim, then "其他"
"""

import argparse
import hashlib
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from plugins.speaker_rec.labels import other_label
from plugins.speaker_rec.tool_endpoint import is_loopback

MAX_BODY = 8 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 refuses connections when many clients connect at once.
    request_queue_size = 1024
    daemon_threads = True


@dataclass
class Reply:
    """One scripted answer. With `status` set, an error of that status is returned; with
    `drop`, the connection is closed without a response; `delay` is slept first."""

    content: str | None = None
    tool_calls: list[str] = field(default_factory=list)  # tool names, argument-free
    status: int | None = None
    delay: float = 0.0
    drop: bool = False


Policy = Callable[[dict, int], Reply]


def default_policy(request: dict, attempt: int) -> Reply:
    """Call audio_sim once, then answer the last candidate, the "other" label of the prompt's
    language (a Chinese prompt holds CJK characters)."""
    called = any(
        m.get("role") == "tool" or "<tool>" in str(m.get("content")) for m in request["messages"]
    )
    if not called:
        return Reply(content="<think>Listen first.</think>", tool_calls=["audio_sim"])
    chinese = re.search(r"[\u4e00-\u9fff]", str(request["messages"][0].get("content")))
    return Reply(
        content="<think>None "
        f"fits.</think><answer>{other_label('zh' if chinese else 'en')}</answer>"
    )


class ScriptedOpenAI:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        policy: Policy = default_policy,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        model: str = "scripted",
    ):
        self.policy, self.latency, self.model = policy, latency, model
        self.requests: list[dict] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self.httpd = _Server((host, port), self._handler())
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ScriptedOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ScriptedOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _attempt(self, body: dict) -> int:
        """How many times this exact request body arrived before (retries repeat it)."""
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.requests.append(body)
            n = self._attempts.get(key, 0)
            self._attempts[key] = n + 1
        return n

    def completion(self, reply: Reply) -> dict:
        calls = [
            {
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": name, "arguments": "{}"},
            }
            for name in reply.tool_calls
        ]
        message = {"role": "assistant", "content": reply.content}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test and bench output clean
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes; without this, Nagle plus the client's
                # delayed ACK stalls every response by ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(
                        200, {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.rstrip("/") != "/v1/chat/completions" or length > MAX_BODY:
                    self._send(
                        404 if length <= MAX_BODY else 413, {"error": {"message": "rejected"}}
                    )
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "bad JSON"}})
                    return
                reply = server.policy(body, server._attempt(body))
                time.sleep(server.latency + reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                elif reply.status:
                    self._send(reply.status, {"error": {"message": f"scripted {reply.status}"}})
                else:
                    self._send(200, server.completion(reply))

        return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.scripted_openai",
        description="Serve a scripted OpenAI-compatible teacher on 127.0.0.1 (calls audio_sim, "
        "then answers the 'other' label) for dry runs and benchmarks; no model behind it.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s); "
        "anything but loopback needs --allow-non-loopback",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="bind a non-loopback --host: the stand-in then answers anyone who reaches it",
    )
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before each answer"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Serve the scripted teacher until interrupted; 2 when asked to bind beyond loopback."""
    if not is_loopback(args.host) and not args.allow_non_loopback:
        print(
            f"error: refusing to bind {args.host}: the stand-in teacher serves loopback only "
            "(pass --allow-non-loopback to bind it anyway)",
            file=sys.stderr,
        )
        return 2
    server = ScriptedOpenAI(host=args.host, port=args.port, latency=args.latency)
    print(f"scripted teacher at {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
