"""Micro-batching: requests for the same work that arrive while it is busy are served together, once.

A request for a key (model and settings) whose previous batch is still running joins the next batch
instead of running alone; when the key is free, the batch runs at once, so a request alone waits for
nothing. Identical items (the same image, by content) are computed once. A crowd opening one shared
link then costs about one run per batch, not one per visitor. Not on ZeroGPU: it books a GPU call under
the token of the request whose thread makes it, so a batch would spend one visitor's quota on everyone's
work and hand that visitor's refusal to all (lab.gpu gives each request its own call there).

The app's own rather than Gradio's batch=True: that hands the function only the first request's
gr.Request, and each visitor's request must stay theirs (their progress, their limits, their errors).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from PIL import Image


def image_fingerprint(image: Image.Image) -> str:
    """The same for images of equal mode, size and pixels."""
    digest = hashlib.blake2b(f"{image.mode} {image.size}".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass
class _Batch:
    items: list = field(default_factory=list)  # distinct items, in arrival order
    slots: dict[str, int] = field(default_factory=dict)  # fingerprint -> index in items
    requests: int = 0  # requests waiting for this batch (identical ones share an item)
    results: list = field(default_factory=list)  # one per item: ("ok", value) or ("error", exception)
    done: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """Calls run(key, items) -> one result per item, for all items of a key that wait together.

    max_size(key): the most distinct items one run takes; fingerprint(item): equal for identical items.
    If a run of several items raises, each item is run alone, so each request gets its own result or error.
    """

    def __init__(self, run: Callable[[Hashable, list], list], max_size: Callable[[Hashable], int],
                 fingerprint: Callable = image_fingerprint):
        self._run, self._max_size, self._fingerprint = run, max_size, fingerprint
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Batch] = {}  # the batch each key is gathering
        self._busy: dict[Hashable, threading.Lock] = {}  # held while a key's batch runs

    def __call__(self, key: Hashable, item):
        """The result of `item`, computed in a batch with the key's other waiting items."""
        fingerprint = self._fingerprint(item)
        with self._lock:
            batch = self._open.get(key)
            if batch is None or (fingerprint not in batch.slots and len(batch.items) >= self._max_size(key)):
                batch = self._open[key] = _Batch()
            leader = not batch.items
            if fingerprint not in batch.slots:
                batch.slots[fingerprint] = len(batch.items)
                batch.items.append(item)
            slot = batch.slots[fingerprint]
            batch.requests += 1
            busy = self._busy.setdefault(key, threading.Lock())
        if leader:
            with busy:  # the key's previous batch finishes while this one gathers
                with self._lock:
                    if self._open.get(key) is batch:
                        del self._open[key]
                self._compute(key, batch)
        batch.done.wait()
        outcome, value = batch.results[slot]
        if outcome == "error":
            raise value
        return value

    def _compute(self, key: Hashable, batch: _Batch) -> None:
        try:
            batch.results = self._outcomes(key, batch.items)
        finally:
            batch.done.set()

    def _outcomes(self, key: Hashable, items: list) -> list[tuple[str, object]]:
        try:
            results = self._run(key, items)
            if len(results) != len(items):
                raise RuntimeError(f"A batch of {len(items)} gave {len(results)} results.")
            return [("ok", result) for result in results]
        except Exception as error:  # noqa: BLE001  (handed to the requests that wait for it)
            if len(items) == 1:
                return [("error", error)]
        return [outcome for item in items for outcome in self._outcomes(key, [item])]
