"""One run over several processes (one or more a host): JAX's distributed runtime, and who does what.

Every process runs the same program over one global mesh (`jax.devices()` lists the devices of
every process). Each process reads only its own rows of every batch (`sharding.process_rows`),
process 0 alone writes the run's files (config, manifest, metrics, results, plots), and Orbax
saves and restores checkpoints from all of them. On CPU the processes reduce through gloo.
A preemption notice (SIGTERM) to any process stops all of them at the same step
(`research.platform.signals`).
"""

import dataclasses

import jax

from research.errors import UserError

# A process that stops answering is declared dead after this long (JAX's default is 100 s);
# on CPU its peers usually learn sooner, from a gloo collective that fails at once.
HEARTBEAT_TIMEOUT_S = 30
MODES = ("off", "auto")


@dataclasses.dataclass(frozen=True)
class Launch:
    """How this process joins the others: `coordinator_address` (host:port of process 0),
    `num_processes` and `process_id` given explicitly, or `mode="auto"`: JAX's own cluster
    detection (SLURM, Kubernetes/JobSet, Cloud TPU, Open MPI)."""

    coordinator_address: str = ""
    num_processes: int = 1
    process_id: int = 0
    mode: str = "off"

    @property
    def distributed(self) -> bool:
        return bool(self.coordinator_address) or self.mode == "auto"


def check(launch: Launch) -> None:
    """Raises UserError for flags that cannot start a run."""
    if launch.mode not in MODES:
        raise UserError(f"--distributed={launch.mode!r}; choose one of {list(MODES)}")
    if launch.coordinator_address:
        if launch.num_processes < 1 or not 0 <= launch.process_id < launch.num_processes:
            raise UserError(f"--process_id={launch.process_id} with --num_processes={launch.num_processes}: "
                            "the id must be in [0, num_processes)")
        if ":" not in launch.coordinator_address:
            raise UserError(f"--coordinator_address={launch.coordinator_address!r}; write it as HOST:PORT")
    elif launch.num_processes != 1 or launch.process_id != 0:
        raise UserError("--num_processes and --process_id need --coordinator_address (or "
                        "--distributed=auto on a cluster JAX detects)")


def initialize(launch: Launch) -> None:
    """Joins the run's other processes, when `launch` says there are any; must come before any
    other JAX computation in the process. Waits up to 5 minutes for all of them."""
    check(launch)
    if not launch.distributed:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # Read by the CPU client only.
    explicit = {}
    if launch.coordinator_address:
        explicit = {"coordinator_address": launch.coordinator_address,
                    "num_processes": launch.num_processes, "process_id": launch.process_id}
    try:
        jax.distributed.initialize(**explicit, heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
    except (RuntimeError, ValueError) as e:  # jaxlib's errors for a missing peer or cluster.
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"cannot join the run's other processes ({first_line}); check that every "
                        "process was started with the same --coordinator_address and --num_processes "
                        "and a distinct --process_id") from e


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; the only one on a single host)."""
    return jax.process_index() == 0
