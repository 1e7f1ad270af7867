"""Training inverse modules: the modular and end-to-end objectives, the trainer (accelerate),
datasets, resumable state and the feature cache."""
