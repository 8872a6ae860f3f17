"""Stage 2: compile RASP programs with Tracr (JAX) into reference weights.

This is the only package that imports JAX or Tracr. Import its modules
explicitly (``compiled.compile``, ``compiled.export``); this file imports nothing.
"""
