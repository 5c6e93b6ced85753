"""Reproduces an XLA:CPU deadlock with several devices in one process (jax/jaxlib 0.10.2).

A jitted step whose replicated output needs an all-reduce, called in a loop with its state
donated and the input batch resident on the devices, synchronising only every EVERY calls:

    python docs/upstream/xla_cpu_inflight_deadlock.py 10     # finishes in a few seconds
    python docs/upstream/xla_cpu_inflight_deadlock.py 1000   # aborts after about 60 s:
    # rendezvous.cc:161] Termination timeout for `all reduce RendezvousKey{...
    # global_devices=[0, 1], num_local_participants=2 ...} of 40 seconds exceeded ...
    # Expected 2 threads to join the rendezvous, but only 1 of them arrived on time.

Nothing but JAX and NumPy; the second argument sets the device count (default 2), the
ITERS environment variable the number of calls (default 20000; 300 calls suffice to abort).
"""

import os
import sys

every = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
devices = int(sys.argv[2]) if len(sys.argv) > 2 else 2
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

mesh = Mesh(np.array(jax.devices()), ("data",))
replicated = NamedSharding(mesh, PartitionSpec())
split = NamedSharding(mesh, PartitionSpec("data"))
w = jax.device_put(jnp.ones((64, 32)), replicated)
x = jax.device_put(jnp.ones((32, 64)), split)


def step(w, x):
    g = jax.grad(lambda w: jnp.mean(jnp.tanh(x @ w) ** 2))(w)
    return w - 0.1 * g, jnp.sum(g)


step = jax.jit(step, donate_argnums=0, out_shardings=(replicated, replicated))
for i in range(int(os.environ.get("ITERS", 20000))):
    w, total = step(w, x)
    if (i + 1) % every == 0:
        jax.block_until_ready(w)
jax.block_until_ready(w)
print(f"finished: {devices} devices, a sync every {every} calls")
