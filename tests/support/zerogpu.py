"""ZeroGPU's device API as the `spaces` package (0.51.3, spaces/zero/api.py) calls it, on loopback, for the harness
of tests/lab/test_zerogpu.py: it books what the app asks for, under the token it was sent, and answers as ZeroGPU
does (a GPU granted, a visitor over quota, no GPU free), holding a visitor's answer while a test needs it to wait.

    with FakeDeviceAPI() as api, zero_gpu_app(config, folder, api) as (process, url):
        Client(url, headers=visitor_headers("alice")).predict(...)
        api.bookings_of("alice")
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lab.admission import PROXY_VARIABLE
from lab.server import LOOPBACK, child_process

HARNESS = Path(__file__).with_name("zerogpu_app.py")
WAIT_S = 120  # the longest a held answer waits for the test to let it go
QUEUE_PING_S = 0.2  # how often ZeroGPU's queue pings a waiting booking


def ip_token(name: str) -> str:
    """An x-ip-token shaped as the Hub's (a JWT: spaces decodes its payload), naming a visitor."""
    def part(document: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'EdDSA'})}.{part({'user': name, 'ip': '10.0.0.1'})}.signature-{name}"


def visitor_headers(name: str, address: str | None = None) -> dict[str, str]:
    """What a visitor's requests carry on ZeroGPU: their token, and the address the Space's proxy appended."""
    return {"x-ip-token": ip_token(name), "x-forwarded-for": address or f"10.1.{len(name)}.{sum(map(ord, name)) % 250}"}


def token_name(token: str | None) -> str | None:
    """The visitor an `ip_token` names."""
    return None if token is None else json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["user"]


@dataclass
class Booking:
    """One /schedule call: whose token, the seconds asked for (after spaces' duration factor), and the answer."""

    visitor: str | None
    seconds: int
    answer: str  # "granted", "over quota" or "no GPU"
    allow_token: str | None = None


class FakeDeviceAPI:
    """ZeroGPU's device API: /startup-report, /schedule, /allow, /release (spaces/zero/api.py's APIClient)."""

    def __init__(self):
        self.bookings: list[Booking] = []
        self.allowed_pids: list[int] = []  # the worker processes spaces forked, as they announce themselves
        self.released: list[tuple[str, bool]] = []  # (allow token, failed)
        self.over_quota: set[str] = set()
        self.no_gpu: set[str] = set()
        self.held: dict[str, threading.Event] = {}
        self.queued: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                url = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if url.path == "/schedule" and token_name(query.get("token")) in api.queued:
                    return api.queue_stream(self, query)
                status, body = api.answer(url.path, query)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        if path == "/schedule":
            visitor = token_name(query.get("token"))
            if visitor in self.held:
                assert self.held[visitor].wait(WAIT_S), f"{visitor}'s booking was never let go"
            with self._lock:
                booking = Booking(visitor, int(query["durationSeconds"]), "granted")
                self.bookings.append(booking)
                if visitor in self.over_quota:
                    booking.answer = "over quota"
                    return 429, {"left": 3, "wait": 3600}
                if visitor in self.no_gpu:
                    booking.answer = "no GPU"
                    return 503, {}
                booking.allow_token = f"allow-{len(self.bookings)}"
            return 200, {"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-harness", "allowToken": booking.allow_token}
        if path == "/allow":
            self.allowed_pids.append(int(query["pid"]))
        elif path == "/release":
            self.released.append((query["allowToken"], query["fail"].lower() == "true"))
        return 200, {}

    def queue_stream(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        """ZeroGPU's queue: a stream of pings (spaces looks at the visitor's page on each) until the returned event
        of `queue` is set, then the GPU; a visitor who leaves the queue is recorded so."""
        with self._lock:
            booking = Booking(token_name(query.get("token")), int(query["durationSeconds"]), "queued")
            self.bookings.append(booking)
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.end_headers()
        try:
            while not self.queued[booking.visitor].wait(QUEUE_PING_S):
                handler.wfile.write(b"event: ping\ndata: {}\n\n")
                handler.wfile.flush()
            booking.answer, booking.allow_token = "granted", f"allow-{id(booking)}"
            granted = {"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-harness", "allowToken": booking.allow_token}
            handler.wfile.write(f"event: succeeded\ndata: {json.dumps(granted)}\n\n".encode())
        except OSError:
            booking.answer = "left the queue"

    def queue(self, visitor: str) -> threading.Event:
        """Queue `visitor`'s bookings until the returned event is set."""
        self.queued[visitor] = threading.Event()
        return self.queued[visitor]

    def hold(self, visitor: str) -> threading.Event:
        """Hold the answer to `visitor`'s bookings until the returned event is set."""
        self.held[visitor] = threading.Event()
        return self.held[visitor]

    def bookings_of(self, visitor: str) -> list[Booking]:
        with self._lock:
            return [booking for booking in self.bookings if booking.visitor == visitor]

    def __enter__(self) -> FakeDeviceAPI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for event in [*self.held.values(), *self.queued.values()]:
            event.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def zero_gpu_app(config: Path, folder: Path, api: FakeDeviceAPI,
                 optimise_steps: int | None = None) -> Iterator[tuple[object, str]]:
    """The app serving `config` in a child process under spaces' ZeroGPU mode (support/zerogpu_app.py), booking
    with `api`; behind a stand-in for the Space's proxy (each visitor's x-forwarded-for is theirs). Yields (process, URL)."""
    cgroup = folder / "cgroup"
    cgroup.write_text("0::/harness\n1:devices:/harness\n")
    home = folder / "home"  # spaces keeps its per-worker cleanups under ~/.zerogpu
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": api.url,
                            "ZEROGPU_PROC_SELF_CGROUP_PATH": str(cgroup), "ZEROGPU_OFFLOAD_DIR": str(folder / "offload"),
                            "HOME": str(home), PROXY_VARIABLE: "1", "OMP_NUM_THREADS": "1",
                            "PYTHONPATH": os.pathsep.join([str(HARNESS.parents[2]), os.environ.get("PYTHONPATH", "")])
                            }.items():
            patch.setenv(name, value)
        with child_process(config, folder, optimise_steps, entry=(str(HARNESS),)) as served:
            yield served
