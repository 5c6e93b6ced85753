#!/usr/bin/env bash
# The accelerator check: what a lent GPU (or TPU) machine should show of this project in a few
# minutes, written to one report, $OUT/device_check.md (OUT: a folder; default /tmp/device_check).
#
#   scripts/device_check.sh                    # set up with --cuda, then the full check
#   scripts/device_check.sh --python=python3   # an offline machine whose python3 has JAX for its
#                                              # accelerator and the project's other packages
#   scripts/device_check.sh --cpu_smoke        # every step at toy sizes on the CPU (CI runs it)
#
# Steps, each timed, its exit status and last lines in the report, none stopping the others:
#   1. the devices JAX sees;
#   2. benchmarks: the train step of shakespeare_char:recipe=gpu and lm:size=124m, tokens/s and
#      MFU against the chip's peak (benchmarks/machine.py holds the peaks of the chips it knows);
#   3. configs/shakespeare_char.py:recipe=gpu to its val loss (nanoGPT: 1.4697 on one A100);
#   4. lm:size=124m (bfloat16, scanned blocks, remat) for 300 steps on tiny Shakespeare, its
#      allocator's peak (manifest.json's peak_device_bytes) beside what --dry_run plans;
#   5. a classifier trained, exported and served: scripts/load_test.py's requests/s against
#      experiments.serve on 127.0.0.1.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

smoke=0
python=""
for arg in "$@"; do
  case "$arg" in
    --cpu_smoke) smoke=1 ;;
    --python=*) python="${arg#--python=}" ;;
    *) echo "device_check.sh: unknown argument $arg (--cpu_smoke, --python=PATH)" >&2; exit 2 ;;
  esac
done

out="${OUT:-/tmp/device_check}"
mkdir -p "$out"
report="$out/device_check.md"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "$python" ]]; then
  if [[ $smoke == 1 ]]; then scripts/setup.sh >/dev/null || exit 1; else scripts/setup.sh --cuda || exit 1; fi
  python="$root/.venv/bin/python"
fi
export PYTHONUNBUFFERED=1

failures=0
# step TITLE COMMAND...: runs COMMAND, logs it to $work/TITLE.log and reports it.
step() {
  local title="$1"; shift
  local log="$work/${title// /_}.log" start=$SECONDS status
  "$@" >"$log" 2>&1
  status=$?
  {
    echo "## $title"
    echo
    local command="$*"
    echo "\`${command:0:400}\`"
    echo
    echo "exit status $status, $((SECONDS - start)) s"
    echo
    echo '```'
    grep -v -E '^I[0-9]{4} |^W[0-9]{4} |step/s' "$log" | tail -n 25
    echo '```'
    echo
  } >>"$report"
  if [[ $status != 0 ]]; then failures=$((failures + 1)); fi
  return $status
}

{
  echo "# Device check, $(date -u +%Y-%m-%dT%H:%MZ)$([[ $smoke == 1 ]] && echo ', CPU smoke mode')"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), python $python"
  echo
} >"$report"

step "devices" "$python" -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__); \
print(jax.devices()); print([d.memory_stats() and d.memory_stats().get('bytes_limit') for d in jax.local_devices()])"

if [[ $smoke == 1 ]]; then
  bench_configs=(--config=configs/shakespeare_char.py:recipe=cpu --config=lm:size=tiny)
  bench_sizes=(--windows=1 --steps_per_window=2 --warmup_steps=1 --matmul_size=256)
  shakespeare=(--config=configs/shakespeare_char.py:recipe=cpu --config.train.steps=10
               --config.train.eval_every=5 --config.eval.max_batches=1)
  lm=(--config=configs/lm.py:size=tiny --config.train.steps=6 --config.train.eval_every=6)
  classifier=(--config=configs/digits_mlp.py --config.train.steps=20 --config.train.eval_every=20)
  export_flags=()
  requests=20
  # Prepared afresh, not in the user's ~/tensorflow_datasets (the tests name their own).
  data=(--config.data.tfds_dir="${DEVICE_CHECK_TFDS_DIR:-$work/tfds}")
else
  bench_configs=(--config=configs/shakespeare_char.py:recipe=gpu --config=lm:size=124m)
  bench_sizes=(--windows=3)
  shakespeare=(--config=configs/shakespeare_char.py:recipe=gpu)
  lm=(--config=configs/lm.py:size=124m --config.train.steps=300 --config.train.eval_every=300
      --config.eval.max_batches=4)
  classifier=(--config=configs/fashion_mnist_cnn.py --config.train.steps=500 --config.train.eval_every=500)
  export_flags=(--measure_latency)
  requests=2000
  data=()
fi
lm+=(--config.data.name=tiny_shakespeare --config.data.tokenizer=char "${data[@]}")
shakespeare+=("${data[@]}")
classifier+=("${data[@]}")

step "benchmarks" "$python" -m benchmarks "${bench_configs[@]}" "${bench_sizes[@]}" --e2e_steps=-1 \
  --pipeline=false --startup_config= --md_out="$out/bench.md"

step "shakespeare_char" "$python" -m experiments.train "${shakespeare[@]}" --workdir="$work/shakespeare"

step "language model" "$python" -m experiments.train "${lm[@]}" --workdir="$work/lm"
step "language model memory" "$python" -c "
import json, subprocess, sys
plan = json.loads(subprocess.run([sys.executable, '-m', 'experiments.train', *sys.argv[1:], '--dry_run'],
                                 check=True, capture_output=True, text=True).stdout)
session = json.load(open('$work/lm/manifest.json'))['sessions'][-1]
planned = plan['bytes_per_device']
print('planned GB a device: params %.2f, optimizer %.2f, temporaries %.2f, total %.2f' % (
    planned['params'] / 1e9, planned['opt_state'] / 1e9, planned['temporaries'] / 1e9,
    sum(planned.values()) / 1e9))
peak = session.get('peak_device_bytes')
print('allocator peak GB:', 'not reported by this backend' if peak is None else round(peak / 1e9, 2))
print('train examples/s:', session.get('train_examples_per_sec'))
print('collective bytes a device:', plan['collective_bytes_per_device'])
" "${lm[@]}"

if step "classifier" "$python" -m experiments.train "${classifier[@]}" --workdir="$work/classifier" &&
   step "export" "$python" -m experiments.export --workdir="$work/classifier" "${export_flags[@]}"; then
  port=$("$python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  "$python" -m experiments.serve --workdir="$work/classifier" --host=127.0.0.1 --port="$port" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  step "serve" "$python" -c "
import sys, time, urllib.request
deadline = time.time() + 120
while True:
    try:
        print(urllib.request.urlopen('http://127.0.0.1:$port/metadata', timeout=5).read().decode()[:600])
        break
    except OSError:
        if time.time() > deadline:
            sys.exit('the server did not answer within 120 s: ' + open('$work/server.log').read()[-2000:])
        time.sleep(0.5)
" && step "load test" "$python" scripts/load_test.py --url="http://127.0.0.1:$port" --requests="$requests" \
    --concurrency=16
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
fi

echo "$failures step(s) failed" >>"$report"
echo "report: $report ($failures step(s) failed)"
[[ $failures == 0 ]]
