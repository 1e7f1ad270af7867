"""The Space: the Gradio app of DETR Inversion Lab, one module per tab (`app.py` only wires it)."""

from pathlib import Path

SPACE_ROOT = Path(__file__).resolve().parent.parent  # the Space's files: app.py, lab/, examples/, checkpoints/
