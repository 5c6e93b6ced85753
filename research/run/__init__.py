"""A run from its config or its workdir: what the config builds, checkpoints (the only Orbax
code), and restoring a finished run."""
