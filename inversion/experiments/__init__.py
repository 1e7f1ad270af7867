"""The paper's experiments as code: evaluation, colour perturbations, layer similarity, detection
matching, COCO AP, optimisation-based inversion, and the certificate of a stack's inverse modules."""
