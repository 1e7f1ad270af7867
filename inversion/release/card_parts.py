"""The parts every model card of published inverters shares, whatever network they invert."""

from __future__ import annotations

NOT_EVALUATED = "Not evaluated yet: run `python -m inversion evaluate` and publish with `--eval`."


def command_and_metrics(command: str, metrics: list[str] | None) -> list[str]:
    """The card's exact training command, then its Metrics section: `metrics` (the evaluation's lines), or a note
    that the stack is not evaluated yet."""
    lines = ["Exact command:", "", "```bash", command, "```", "", "## Metrics", ""]
    if metrics is None:
        return [*lines, NOT_EVALUATED]
    return [*lines, *metrics, "", "The full report is in `report.md`, the numbers in `results.json`."]
