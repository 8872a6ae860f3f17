"""Stage 3: the torch transformer (shared with compiled weights) and its training."""
