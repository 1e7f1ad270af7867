"""Fair, bounded queueing: who sent a request, how many each visitor may have queued, and the slow lane.

A visitor is the address the Space's proxy saw: behind it (on a Space, which sets SPACE_ID, or where
$LAB_BEHIND_PROXY is 1) the last x-forwarded-for entry, the one the proxy appends; elsewhere the address
of the connection (uvicorn takes it from x-forwarded-for only when a proxy on this machine sent it).
Everything else a request carries (earlier x-forwarded-for entries, ZeroGPU's x-ip-token, which the page
asks the Hub for afresh and the app cannot verify) is the client's own to choose: it never says who they are.

Gradio bounds its queue as a whole (QUEUE_SIZE) and runs each concurrency group with its own limit;
this module adds what it lacks. `VisitorLimit` is a door on Gradio's queue: a visitor who already has
VISITOR_LIMIT requests waiting or running is refused with a message, so one client cannot fill the
queue for everyone. `SlowLane` is a concurrency group of the app's own for optimisation-based
reconstructions (tens of seconds each): whether a stage request is slow depends on its settings, while
Gradio's groups are fixed per event. The tabs' model requests share one Gradio group (MODEL_WORK),
large enough that slow requests waiting in the lane never hold all of it. A request whose page was
closed is dropped by Gradio while it waits in the queue; `abandoned` lets slow work stop too.

This is the one module that reads Gradio's queue internals (its events, their requests and whether
their page is still open); tests/lab/test_load.py fails if they change.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import gradio as gr
from gradio.context import LocalContext

from lab import text

QUEUE_SIZE = 64  # requests waiting at once, all visitors together (Gradio's max_size)
VISITOR_LIMIT = 4  # requests waiting or running at once per visitor: a page needs one or two
MODEL_WORK = "models"  # the Gradio concurrency group of the tabs' model requests
MODEL_CONCURRENCY = 16  # model requests running at once: off ZeroGPU a crowd's stage requests batch (lab.batching)
SLOW_RUNNING = 1  # optimisation-based reconstructions running at once on a CPU (each keeps it busy)
SLOW_WAITING = 3  # ... and waiting for it, each visitor at most one; with the one running, 4 of MODEL_CONCURRENCY
SLOW_RUNNING_GPU = 4  # ... on a GPU, each its own GPU call (ZeroGPU queues them when the Space's GPUs are busy)
SLOW_WAITING_GPU = 4  # ... and waiting: with those running, half of MODEL_CONCURRENCY
PROXY_VARIABLE = "LAB_BEHIND_PROXY"  # 1: a proxy that appends the client's address to x-forwarded-for is in front
BEHIND_PROXY = "SPACE_ID" in os.environ or os.environ.get(PROXY_VARIABLE) == "1"  # a Space's proxy appends it
MODEL_EVENT = {"concurrency_id": MODEL_WORK, "concurrency_limit": MODEL_CONCURRENCY}  # for the tabs' event listeners
ABANDON_POLL_S = 0.5  # how often a request waiting in the slow lane checks that its page is still open


def visitor(headers: Mapping[str, str], client_host: str | None) -> str:
    """Who sent a request: behind the Space's proxy (BEHIND_PROXY) the last x-forwarded-for address, the one the
    proxy appended (the entries before it are whatever the client sent), else the address the request came from."""
    forwarded = [address.strip() for address in headers.get("x-forwarded-for", "").split(",") if address.strip()]
    if BEHIND_PROXY and forwarded:
        return forwarded[-1]
    return client_host or "unknown"


def _request_visitor(request) -> str:
    """The visitor of a fastapi or Gradio request."""
    client = getattr(request, "client", None)
    return visitor(request.headers, client.host if client else None)


def current_visitor() -> str:
    """The visitor of the request being handled in this thread ("local" outside a Gradio event)."""
    request = LocalContext.request.get(None)
    return "local" if request is None else _request_visitor(request)


def abandoned() -> bool:
    """Whether the page that sent the request being handled in this thread has been closed (Gradio then marks
    its event dead; it stops only generators, so slow work asks this to stop too)."""
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    event = queue.event_ids_to_events.get(event_id) if queue is not None and event_id else None
    return event is not None and not event.alive


def stop_if_abandoned() -> None:
    """Raise if the page that sent the request being handled has been closed (nobody is waiting for the result)."""
    if abandoned():
        raise gr.Error(text.ABANDONED, print_exception=False)


def bounded_queue(demo: gr.Blocks, size: int = QUEUE_SIZE, per_visitor: int = VISITOR_LIMIT) -> gr.Blocks:
    """Queue `demo` with at most `size` requests waiting and at most `per_visitor` per visitor (waiting or running);
    events outside MODEL_WORK run one at a time each."""
    demo.queue(max_size=size, default_concurrency_limit=1)
    VisitorLimit(demo._queue, per_visitor)
    return demo


class VisitorLimit:
    """A door on Gradio's queue: a visitor with `limit` requests waiting or running is refused with a message.

    The refusal is sent as a validation error (HTTP 422 with the message), the one refusal at the queue's
    door whose text both the page and gradio_client show; "queue full" (503) loses it.
    """

    def __init__(self, queue, limit: int = VISITOR_LIMIT):
        self.queue, self.limit, self._push = queue, limit, queue.push
        queue.push = self.push

    def pending(self, who: str) -> int:
        """The visitor's requests waiting in the queue or running (pages still open)."""
        waiting = [event for group in self.queue.event_queue_per_concurrency_id.values() for event in group.queue]
        running = [event for job in self.queue.active_jobs if job for event in job]
        return sum(1 for event in waiting + running if event.alive and _request_visitor(event.request) == who)

    async def push(self, body, request, username):
        if self.pending(_request_visitor(request)) >= self.limit:
            refusal = {"__type__": "validate", "is_valid": False, "parameter_name": "request",
                       "message": text.VISITOR_BUSY.format(limit=self.limit)}
            return False, [refusal], "validator_error"
        return await self._push(body=body, request=request, username=username)


def slow_lane(on_gpu: bool) -> SlowLane:
    """The slow lane for models on a GPU (several optimisations at once) or on the CPU (one at a time)."""
    return SlowLane(SLOW_RUNNING_GPU, SLOW_WAITING_GPU) if on_gpu else SlowLane(SLOW_RUNNING, SLOW_WAITING)


class SlowLane:
    """The app's own concurrency group for slow work: `running` at once, `waiting` more in line, one per visitor;
    any other is refused at once with a message rather than left to wait for minutes."""

    def __init__(self, running: int = SLOW_RUNNING, waiting: int = SLOW_WAITING):
        self.running, self.waiting = running, waiting
        self._slots = threading.Semaphore(running)
        self._lock = threading.Lock()
        self._visitors: Counter[str] = Counter()

    @property
    def occupancy(self) -> int:
        """Requests in the lane, running or waiting."""
        return sum(self._visitors.values())

    @contextmanager
    def enter(self, who: str, waiting: Callable[[int], None] = lambda busy: None) -> Iterator[None]:
        """Run the block in the lane for visitor `who`: wait for a slot (stopping if the page is closed) or be refused.

        While it waits, waiting(requests in the lane) is called every ABANDON_POLL_S: a progress message, which
        is also what lets Gradio notice a closed page (it looks when it has a message to send)."""
        with self._lock:
            if self._visitors[who]:
                raise gr.Error(text.SLOW_ONE_PER_VISITOR, print_exception=False)
            if self.occupancy >= self.running + self.waiting:
                raise gr.Error(text.SLOW_LANE_FULL.format(running=self.running, waiting=self.waiting),
                               print_exception=False)
            self._visitors[who] += 1
        try:
            while not self._slots.acquire(timeout=ABANDON_POLL_S):
                stop_if_abandoned()
                waiting(self.occupancy)
            try:
                stop_if_abandoned()
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._visitors[who] -= 1
                if not self._visitors[who]:
                    del self._visitors[who]
