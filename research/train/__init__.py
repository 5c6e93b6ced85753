"""Training: everything between a resolved config and a finished workdir.

  loop.py           the whole procedure, top to bottom; single runs and vectorized groups
  experiment.py     what a config builds (data, model, optimizer, mesh) and the jitted steps
  steps.py          the pure train, multi-step and eval step functions
  state.py          the train state pytree and its initialisation
  evaluation.py     one pass over a split, final results, evaluating a saved checkpoint
  checkpoint.py     the only module that talks to Orbax
  metric_writer.py  metrics.jsonl, TensorBoard events and the progress bar
  profiling.py      train.profile_steps: a jax.profiler trace of a span of steps
"""
