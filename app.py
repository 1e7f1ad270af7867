"""DETR Inversion Lab: the Gradio app, as a Hugging Face Space on ZeroGPU or `python app.py` on a laptop.

This file only wires: the models of space_config.yaml (or the file $INVERSION_SPACE_CONFIG names)
are loaded and placed on the device at import, and the page is built then, as ZeroGPU requires;
the page is lab.page, the serving settings lab.server (`python -m lab.server --help` for options).
"""

import spaces  # noqa: F401, I001  (first: ZeroGPU patches torch before anything touches CUDA)

import logging

from lab.catalogue import load_catalogue
from lab.page import build_demo
from lab.server import device, launch

logging.basicConfig(level=logging.INFO)
catalogue = load_catalogue(device=device())
demo = build_demo(catalogue)

if __name__ == "__main__":
    launch(demo, catalogue.limits)
