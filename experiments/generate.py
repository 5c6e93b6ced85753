"""Samples text from a language-model run.

  python -m experiments.generate --workdir=runs/bbc_lm --prompt="The government said" \
      [--max_new_tokens=100 --temperature=0.8 --top_k=40 --seed=0 --num_samples=1 --checkpoint=latest]

--temperature=0 decodes greedily; the same flags give the same text.
"""

from absl import app, flags

from experiments import common

flags.DEFINE_string("workdir", None, "Workdir of a language-model run of experiments.train.")
flags.DEFINE_string("prompt", None, "Text to continue (not empty).")
flags.DEFINE_integer("max_new_tokens", 100,
                     "Tokens to generate (past the model's max_len, it reads the last max_len - 1).",
                     lower_bound=1)
flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 is greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", 40, "Sample from the k most likely tokens; 0 for all.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("num_samples", 1, "Continuations to print.", lower_bound=1)
flags.DEFINE_string("checkpoint", "latest", "latest, best or a saved step number.")
flags.mark_flags_as_required(["workdir", "prompt"])
flags.register_validator("prompt", lambda prompt: prompt is None or bool(prompt.strip()),
                         "--prompt is empty: give the text to continue")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.serve import generate

    f = flags.FLAGS
    samples = common.run_or_exit(
        generate.generate, f.workdir, f.prompt, max_new_tokens=f.max_new_tokens,
        temperature=f.temperature, top_k=f.top_k, seed=f.seed, num_samples=f.num_samples,
        checkpoint_name=f.checkpoint)
    for sample in samples:
        print(f.prompt + sample)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
