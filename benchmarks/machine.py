"""The machine a report was measured on, and the vendor's peak for its accelerator."""

import importlib.metadata
import os
import sys

import jax

# Vendors' dense bfloat16 peaks, TFLOP/s a chip, by the start of JAX's device_kind: on these
# accelerators each step's FLOP/s is also given as a fraction of the chip's peak (MFU).
VENDOR_PEAK_TFLOPS = {
    "NVIDIA H100": 989.4, "NVIDIA H200": 989.4, "NVIDIA A100": 312.0, "NVIDIA L4": 121.0,
    "TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0, "TPU v6 lite": 918.0,
}


def vendor_peak_tflops(device_kind: str) -> float | None:
    return next((peak for kind, peak in VENDOR_PEAK_TFLOPS.items() if device_kind.startswith(kind)), None)


def machine(torch: bool = False) -> dict:
    """CPU, cores, devices, versions and XLA_FLAGS; with `torch`, PyTorch's version and threads."""
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "device": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"), "python": sys.version.split()[0],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "vendor_peak_tflops": vendor_peak_tflops(jax.devices()[0].device_kind)}
    if torch:
        import torch as torch_module

        info.update(torch=torch_module.__version__, torch_threads=torch_module.get_num_threads())
    return info
