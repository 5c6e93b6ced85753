"""XLA:CPU compiler flags the project sets unless the user has.

YNNPACK for reductions only: a parameter's gradient is a sum over the batch axes, which XLA's
own emitter runs one strided element at a time; YNNPACK runs it about 15x faster. Dots,
convolutions and elementwise fusions stay with XLA, which runs them faster here. With several
CPU devices in one process YNNPACK stays off (docs/performance.md says why).

XLA reads XLA_FLAGS when JAX starts its backend (the first computation), so `apply` must come
before that. CPU compiler flags do not touch GPU or TPU compilation, and they are part of the
compilation-cache key.
"""

import os
import re

from research.errors import UserError

YNN_FUSIONS = "xla_cpu_experimental_ynn_fusion_type"
_applied = {}  # What apply() added to this process's XLA_FLAGS and environment.


def cpu_devices(environ=os.environ) -> int:
    """The CPU devices a process started with `environ` has, as far as its environment says."""
    match = re.search(r"--xla_force_host_platform_device_count[= ](\d+)", environ.get("XLA_FLAGS", ""))
    counts = [int(match.group(1))] if match else []
    counts.append(int(environ.get("JAX_NUM_CPU_DEVICES") or -1))
    return max(1, *counts)


def defaults(environ=os.environ) -> dict[str, str]:
    """The flags research sets unless the user has: YNNPACK for reductions, off with several
    CPU devices."""
    return {YNN_FUSIONS: "reduce" if cpu_devices(environ) == 1 else ""}


def apply(environ=os.environ) -> str:
    """Adds each default the user has not set to XLA_FLAGS, and sizes XLA:CPU's thread pool for
    several devices (`PJRT_NPROC`, unless set); returns the resulting XLA_FLAGS."""
    devices = cpu_devices(environ)
    if devices > 1 and "PJRT_NPROC" not in environ:
        # XLA:CPU launches and runs every device's calls on one pool of max(cores, devices)
        # threads. A thread held by one device (a blocked launch, a collective waiting for its
        # peers) can leave another device's part of that collective queued with no thread, and
        # after 40 s XLA aborts (docs/upstream/xla_cpu_inflight_deadlock.md): with two threads
        # a device, one is always free. It changes no number, only which thread runs what.
        environ["PJRT_NPROC"] = str(max(os.cpu_count() or 1, 2 * devices))
        if environ is os.environ:
            _applied["PJRT_NPROC"] = environ["PJRT_NPROC"]
    flags = environ.get("XLA_FLAGS", "")
    for name, value in defaults(environ).items():
        if f"--{name}=" not in flags and f"--{name} " not in f"{flags} ":
            flags = f"{flags} --{name}={value}".strip()
            if environ is os.environ:
                _applied[name] = value
    environ["XLA_FLAGS"] = flags
    return flags


def check_devices(devices) -> None:
    """Refuses several CPU devices in a process given YNNPACK reductions by apply(): that
    happens when the device count is set after `research.platform.apply()`."""
    if _applied.get(YNN_FUSIONS) and len(devices) > 1 and devices[0].platform == "cpu":
        raise UserError(
            f"this process has {len(devices)} CPU devices, set after research.platform.apply(), which "
            "turned on YNNPACK reductions for one device; set "
            "JAX_NUM_CPU_DEVICES or XLA_FLAGS=--xla_force_host_platform_device_count before starting, "
            f"or XLA_FLAGS=--{YNN_FUSIONS}= to leave YNNPACK off")
