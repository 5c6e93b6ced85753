"""research: pure-function JAX training, from config to checkpoints and results."""

from research import host_memory as _host_memory
from research import xla_defaults as _xla_defaults

_xla_defaults.apply()
_host_memory.keep_freed_memory()
