"""XLA flags the project sets by default, applied when `research` is imported.

XLA:CPU in the pinned jaxlib hands fusions (dots, convolutions, elementwise, reductions) to
YNNPACK. For the convolutional train steps this project runs, XLA's own emitters and its Eigen
convolutions are faster on CPU: the Fashion-MNIST CNN step goes from about 1,650 to 2,200
examples/s on 2 cores (scripts/bench.py, alternating runs), while the MLP and Transformer
steps are unchanged. So YNNPACK fusions are off by default.

XLA reads XLA_FLAGS when JAX starts its backend (the first computation, not `import jax`), so
this works as long as `research` is imported before anything runs. A flag the user already
put in XLA_FLAGS is left as they set it. Flags of the CPU compiler do not touch GPU or TPU
compilation. The flags are part of JAX's compilation-cache key, so a cached executable
compiled under other flags is never reused.
"""

import os

DEFAULTS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def apply(environ=os.environ) -> str:
    """Adds each default the user has not set to XLA_FLAGS; returns the resulting value."""
    flags = environ.get("XLA_FLAGS", "")
    for name, value in DEFAULTS.items():
        if f"--{name}=" not in flags and f"--{name} " not in f"{flags} ":
            flags = f"{flags} --{name}={value}".strip()
    environ["XLA_FLAGS"] = flags
    return flags
