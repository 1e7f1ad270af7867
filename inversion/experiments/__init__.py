"""The paper's experiments as code: evaluation, colour perturbations, layer similarity, detection
matching, COCO AP and optimisation-based inversion."""
