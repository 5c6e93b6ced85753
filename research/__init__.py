"""research: pure-function JAX training, from config to checkpoints and results."""
