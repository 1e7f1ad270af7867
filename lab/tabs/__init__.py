"""One module per tab; each `build(page)` lays out its tab inside the page and wires its events.

A tab whose state links can restore returns a `Tab`: the controls a link sets, how, and the
action to re-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from inversion.core.registry import ClassifierModel
from lab import text
from lab.catalogue import Catalogue
from lab.gpu import GpuCalls


@dataclass
class Page:
    """What every tab shares: the models and their GPU calls, the model choice, the link box, the example images."""

    catalogue: Catalogue
    gpu: GpuCalls
    model: gr.Dropdown
    link: gr.Textbox
    examples: list[Path]

    @property
    def max_megapixels(self) -> float:
        return self.catalogue.limits.max_megapixels

    def model_name(self, value) -> str:
        """A model name sent by a visitor, checked on the CPU before any GPU call is booked."""
        if value not in self.catalogue.models:
            raise gr.Error(text.UNKNOWN_MODEL.format(choices=", ".join(self.catalogue.models), value=value),
                           print_exception=False)
        return value

    def is_classifier(self, name: str) -> bool:
        """Whether the model called `name` (checked by `model_name`) is an image classifier, not a detector."""
        return isinstance(self.catalogue.models[name], ClassifierModel)

    def shows_classifier(self, state) -> bool:
        """Whether a result's link state names a classifier (no model named: the default), for its card."""
        return self.is_classifier(state.model or self.catalogue.default)

    def detector_name(self, value, what: str) -> str:
        """A model name as `model_name` checks it, refused in one message when it names a classifier (`what`: the
        tab or tool that serves detectors only, as `text.classifier_not_served` names it)."""
        name = self.model_name(value)
        if self.is_classifier(name):
            raise gr.Error(text.classifier_not_served(self.catalogue.models[name].spec.label, what), print_exception=False)
        return name


@dataclass
class Tab:
    """What a link needs of a tab: the controls it sets, how, and the action it re-runs."""

    name: str  # the tab's id in links
    controls: list  # the components `restore` sets (the image input first, if the tab has one)
    restore: Callable  # (LinkState, example image path or None, model name) -> one update per control
    run: Callable  # the tab's action, taking `inputs` and returning `outputs`
    inputs: list
    outputs: list
    needs_example: bool = True  # an opened link re-runs the action only if it names an example
