#!/usr/bin/env bash
# Sets up everything the project needs, from nothing, and does nothing when it is already done:
#   - .venv from requirements.lock (exact versions), rebuilt whenever the lock file changes;
#   - the offline Fashion-MNIST files (Debian package dataset-fashion-mnist), via apt as root;
#   - with --bench, the `bench` extra (PyTorch, CPU) from requirements-bench.lock, on top of
#     requirements.lock without changing any version it pins (python -m benchmarks --torch);
#   - with --cuda, the `cuda` extra (JAX's CUDA 12 plugin for the pinned jaxlib and NVIDIA's
#     libraries) from requirements-cuda.lock, likewise: for a host with an NVIDIA GPU; with
#     --tpu, the `tpu` extra (libtpu) from requirements-tpu.lock, for a Cloud TPU VM.
# Called by scripts/train.sh and scripts/test.sh; safe to run by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=0
extras=()
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --cuda) extras+=(cuda) ;;
    --tpu) extras+=(tpu) ;;
    *) echo "setup: unknown argument $arg; the arguments are --bench, --cuda and --tpu" >&2; exit 2 ;;
  esac
done
venv="$root/.venv"
stamp="$venv/.requirements.lock.sha256"
want=$(sha256sum "$root/requirements.lock" | cut -d' ' -f1)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || return 1; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: creating $venv from requirements.lock (first run only, a few minutes)" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt_install python3-venv || { echo "setup: python3 cannot make a venv; install python3-venv" >&2; exit 1; }
    python3 -m venv "$venv"
  fi
  # Bytecode is compiled here, at install (pip's default): where PYTHONDONTWRITEBYTECODE is set
  # (as on our CI machines), Python would otherwise compile every imported module again in
  # every process (a --no-compile setup made the suite 3 minutes slower).
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements.lock"
  echo "$want" > "$stamp"
fi

if [ "$bench" = 1 ]; then
  bench_stamp="$venv/.requirements-bench.lock.sha256"
  bench_want=$(cat "$root/requirements.lock" "$root/requirements-bench.lock" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$bench_stamp" ] || [ "$(cat "$bench_stamp")" != "$bench_want" ]; then
    echo "setup: installing the bench extra (PyTorch, CPU) from requirements-bench.lock" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      -r "$root/requirements-bench.lock" -c "$root/requirements.lock"
    echo "$bench_want" > "$bench_stamp"
  fi
fi

for extra in "${extras[@]}"; do  # The accelerator's plugin, on top of the lock, changing none of it.
  lock="$root/requirements-$extra.lock"
  extra_stamp="$venv/.requirements-$extra.lock.sha256"
  extra_want=$(cat "$root/requirements.lock" "$lock" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$extra_stamp" ] || [ "$(cat "$extra_stamp")" != "$extra_want" ]; then
    echo "setup: installing the $extra extra from requirements-$extra.lock" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$lock" -c "$root/requirements.lock"
    echo "$extra_want" > "$extra_stamp"
  fi
done

fashion_dir=/usr/share/datasets/fashion-mnist
if [ ! -f "$fashion_dir/train-images-idx3-ubyte.gz" ]; then
  echo "setup: installing the Fashion-MNIST files (Debian package dataset-fashion-mnist)" >&2
  apt_install dataset-fashion-mnist || echo "setup: could not install dataset-fashion-mnist;" \
    "as root run 'apt-get install dataset-fashion-mnist', or put the four IDX .gz files in a" \
    "directory and pass --config.data.idx_dir=DIR" >&2
fi
