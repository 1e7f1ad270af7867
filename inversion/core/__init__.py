"""The core: the stage vocabulary, the capturing detector, the inverse modules and their cascade,
the checkpoint format, Hub/local resolution, and the registry that builds a `Model`.

Core imports nothing else of the package."""
