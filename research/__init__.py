"""research: pure-function JAX training, from config to checkpoints and results."""

from research import xla_defaults as _xla_defaults

_xla_defaults.apply()
