"""Where the repository's own files are, for tests that read what it ships (models, examples, docs)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHAPES_DETECTOR = REPO / "checkpoints" / "shapes" / "detector"
CONDITIONAL_DETECTOR = REPO / "checkpoints" / "shapes_conditional" / "detector"
DEFORMABLE_DETECTOR = REPO / "checkpoints" / "shapes_deformable" / "detector"
EXAMPLES = REPO / "examples"
