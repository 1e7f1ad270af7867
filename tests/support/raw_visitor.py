"""A page as the browser drives it, over raw HTTP: requests joined to Gradio's queue, every message of their stream
kept (progress included), and a stream it can close (the page closed). Every wait is bounded (WAIT_S)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx

from support.paths import EXAMPLES

WAIT_S = 120


class RawVisitor:
    """A page as the browser drives it: requests joined to the queue, their messages on one stream it can close."""

    def __init__(self, url: str, address: str, headers: dict[str, str] | None = None, source: str | None = None):
        """`address`: the x-forwarded-for it sends; `source`: the loopback address it connects from (uvicorn trusts
        x-forwarded-for from 127.0.0.1 only, as a proxy on the same machine)."""
        self.address, self.url, self.session = address, url, uuid.uuid4().hex
        self.headers = {"x-forwarded-for": address, **(headers or {})}
        self.http = httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=WAIT_S)
        self.messages: list[dict] = []
        self.stream = None

    def join(self, api_name: str, data: list) -> httpx.Response:
        config = self.http.get(self.url + "config").json()
        fn_index = next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)
        return self.http.post(self.url + "gradio_api/queue/join", headers=self.headers,
                              json={"data": data, "fn_index": fn_index, "session_hash": self.session,
                                "event_data": None, "trigger_id": None})

    def ask_for_optimised_stages(self, model: str = "shapes") -> None:
        """Ask for optimisation-based stage reconstructions of an example, then listen as the page does."""
        self.ask_for_stages(model, optimised=True)

    def ask_for_stages(self, model: str = "shapes", optimised: bool = False) -> None:
        """Ask for stage reconstructions of an example, then listen as the page does."""
        with open(EXAMPLES / "shapes_15.png", "rb") as file:
            uploaded = self.http.post(self.url + "gradio_api/upload", files={"files": file}).json()[0]
        image = {"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": "shapes_15.png"}
        assert self.join("stages", [image, model, False, optimised]).status_code == 200
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.stream is not None, "the page's stream")

    def _read(self) -> None:
        try:
            with self.http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": self.session},
                                  headers=self.headers) as response:
                self.stream = response
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.messages.append(json.loads(line[5:]))
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by `close`

    def received(self, kind: str) -> bool:
        return any(message["msg"] == kind for message in self.messages)

    def error(self) -> str | None:
        """The error its request ended with, if it ended with one."""
        return next((str(message["output"].get("error")) for message in self.messages
                     if message["msg"] == "process_completed" and not message.get("success")), None)

    def progress(self) -> list[str]:
        """The progress texts its request was sent, in order."""
        return [unit.get("desc") or "" for message in self.messages if message["msg"] == "progress"
                for unit in message["progress_data"]]

    def close(self) -> None:
        """The page is closed: its stream ends."""
        if self.stream is not None:
            self.stream.close()


def wait_for(condition, what: str, state=lambda: None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what} ({state()})"
        time.sleep(0.05)
