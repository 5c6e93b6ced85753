"""Compares two finished workdirs bit for bit: results.json and the latest checkpoint's params.

  .venv/bin/python scripts/compare_runs.py runs/a runs/b
Exits 1 if anything differs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    from research.sweeps.reproduce import compare_workdirs

    report = compare_workdirs(sys.argv[1], sys.argv[2])
    print(f"results.json identical: {report['results_identical']}")
    print(f"final params bitwise identical: {report['params_identical']} ({report['num_params']:,} values, "
          f"max |diff| {report['max_abs_param_diff']:.3g})")
    sys.exit(0 if report["results_identical"] and report["params_identical"] else 1)
