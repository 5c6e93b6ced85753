#!/usr/bin/env bash
# Sets up everything the project needs, from nothing, and does nothing when it is already done:
#   - .venv from requirements.lock (exact versions), rebuilt whenever the lock file changes;
#   - the offline Fashion-MNIST files (Debian package dataset-fashion-mnist), via apt as root.
# Called by scripts/train.sh and scripts/test.sh; safe to run by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
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
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements.lock"
  echo "$want" > "$stamp"
fi

fashion_dir=/usr/share/datasets/fashion-mnist
if [ ! -f "$fashion_dir/train-images-idx3-ubyte.gz" ]; then
  echo "setup: installing the Fashion-MNIST files (Debian package dataset-fashion-mnist)" >&2
  apt_install dataset-fashion-mnist || echo "setup: could not install dataset-fashion-mnist;" \
    "as root run 'apt-get install dataset-fashion-mnist', or put the four IDX .gz files in a" \
    "directory and pass --config.data.idx_dir=DIR" >&2
fi
