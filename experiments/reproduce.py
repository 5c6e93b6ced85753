"""Reruns a finished run from its config.json into a new workdir and reports whether the
results and final params match bit for bit (they should, on the same machine and stack).

  python -m experiments.reproduce --workdir=runs/fashion_mnist_cnn [--into=DIR]

Exit code: 0 identical (for a run trained vectorized, the same within float rounding), 2
different, 1 bad input. The rerun goes to <workdir>.reproduced, or for a run of a sweep to
<sweep_dir>.reproduced/<run>. Differences in git commit, package versions
or devices from the original manifest are warned about first.
"""

import sys

from absl import app, flags

from experiments import common

flags.DEFINE_string("workdir", None, "Workdir of a finished run.")
flags.DEFINE_string("into", None, "Where to rerun it (default: <workdir>.reproduced).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.sweeps import reproduce

    workdir = flags.FLAGS.workdir.rstrip("/")
    into = flags.FLAGS.into or reproduce.default_into(workdir)
    report = common.run_or_exit(reproduce.reproduce, workdir, into)
    identical = report["results_identical"] and report["params_identical"]
    print(f"reproduce {workdir} -> {into}: results.json identical: {report['results_identical']}; "
          f"final params bitwise identical: {report['params_identical']} ({report['num_params']:,} values, "
          f"max |diff| {report['max_abs_param_diff']:.3g})")
    for name, diff in report["metric_diffs"].items():
        print(f"  {name}: differs by {diff:+.3g}")
    if report["environment_differences"]:
        print("  environment differs: " + "; ".join(report["environment_differences"]))
    if report["vectorized_with"]:
        # A vmapped step orders float operations unlike the step of one run.
        agreement = ("bit for bit" if identical else "within float rounding" if report["close"]
                     else "NOT within float rounding")
        print(f"  the run was trained vectorized (with {report['vectorized_with']} runs in one vmapped step) "
              f"and rerun alone: it agrees {agreement} (metrics rtol 1e-5, params rtol 1e-4)")
        sys.exit(0 if identical or report["close"] else 2)
    sys.exit(0 if identical else 2)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
