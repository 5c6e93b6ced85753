"""research: pure-function JAX training, from config to checkpoints and results.

Importing any module of this package changes nothing in the process; programs apply the
process settings with `research.platform.apply()` (see that package).
"""
