"""The Shapes recipes' training log: every line printed and appended to a file."""

from __future__ import annotations

from pathlib import Path


class TrainingLog:
    """Call with a line to print it and append it to `path` (its folder made if missing); `close` when done."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a")

    def __call__(self, message: str) -> None:
        print(message, flush=True)
        self.file.write(message + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
