"""Compare a compiled (Tracr) transformer with a learned one: subspaces, heads, interventions.

The library entry point is ``compare.pipeline.compare_models``; ``python -m compare``
writes the report. Nothing here imports JAX or Tracr.
"""
