"""What every program does the same way: the process settings, quiet library logs, one error
line and exit 1 for bad input."""

import logging
import os
import signal
import sys
import threading
import warnings

from absl import flags
from absl import logging as absl_logging

from research.errors import UserError, describe_os_error, error_line

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROJECT_DIRS = tuple(os.path.join(_ROOT, name) + os.sep for name in ("research", "experiments"))


# Library warnings about what this project does on purpose, dropped from every program's log:
# Orbax on a checkpoint directory opened read-only (evaluate, export), and on a save between
# evaluations, which has no metric to rank it by (the latest checkpoints are kept anyway).
_EXPECTED_WARNINGS = (
    "Given directory is read only", "Requested `tracked_metric`; did not provide metrics",
    # jax2onnx 0.13.0 (ONNX export): two image plugins we do not use fail to import on our JAX,
    # and onnx_ir skips type annotations of shape constants; the export's check covers both.
    "Skipping import of jax2onnx.plugins.dm_pix", "Skipping pkgutil import of jax2onnx.plugins.dm_pix",
    "The value type for shape")


class _ProjectInfoOnly(logging.Filter):
    """Info lines from this project pass; libraries (Orbax logs every file it writes) need
    warning level."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.pathname.startswith(_PROJECT_DIRS)
        if not ours and record.levelno < logging.ERROR and record.getMessage().startswith(_EXPECTED_WARNINGS):
            return False
        if not ours and record.exc_info and not _show_tracebacks():
            # A library's own report of an error we turn into one line ourselves.
            record.exc_info, record.exc_text = None, None
        return record.levelno >= logging.WARNING or ours


def _show_tracebacks() -> bool:
    return os.environ.get("RESEARCH_TRACEBACK") == "1"


def _one_line_unraisable(unraisable) -> None:
    """An error raised where nothing can catch it (a TensorStore callback into an event loop
    that Orbax closed after a failed write) as one warning line."""
    if _show_tracebacks():
        return sys.__unraisablehook__(unraisable)
    first_line = (str(unraisable.exc_value).strip().splitlines() or [""])[0]
    print(f"warning: {unraisable.exc_type.__name__}: {first_line}", file=sys.stderr)


def _one_line_thread_errors(args: threading.ExceptHookArgs) -> None:
    """A background thread's error (TensorBoard's writer, Orbax's saver) as one warning line;
    the main thread meets its consequence and reports it as the error."""
    if _show_tracebacks() or args.exc_type is SystemExit:
        return threading.__excepthook__(args)
    name = args.thread.name if args.thread is not None else "a background thread"
    first_line = (str(args.exc_value).strip().splitlines() or [""])[0]
    print(f"warning: {name} failed: {args.exc_type.__name__}: {first_line}", file=sys.stderr)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing (pass as app.run's flags_parser) in which everything bad input can
    raise while the config file is loaded and overridden becomes one line: a missing or broken
    config file, a bad `:arg`, an unknown --config.KEY (absl lets these through as tracebacks)."""
    own = argv[1:argv.index("--")] if "--" in argv else argv[1:]  # A launcher's command is not its own.
    for spec in (a.removeprefix("--config=") for a in own if a.startswith("--config=")):
        if not os.path.isfile(spec.partition(":")[0]):
            print(f"error: the config file {spec.partition(':')[0]} does not exist (--config)",
                  file=sys.stderr)
            sys.exit(1)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = str(e)
        if "Traceback (most recent call last)" in message:
            # ml_collections puts the traceback of a get_config that raised into its message:
            # the flag and the exception's own line are what the user needs.
            flag = message.split(": Error whilst parsing config file")[0]
            message = f"{flag}: the config file failed: {message.strip().splitlines()[-1]}"
        print(f"error: {message}", file=sys.stderr)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
    except (AttributeError, KeyError) as e:
        overrides = [a for a in argv[1:] if a.startswith("--config.")]
        detail = " ".join(str(e).replace("\\n", " ").replace("\\'", "").strip("'\"").split())
        print(f"error: unknown config key in {' '.join(overrides)}: {detail}", file=sys.stderr)
    except SyntaxError as e:
        print(f"error: the config file {e.filename} does not parse: {e.msg} at line {e.lineno}",
              file=sys.stderr)
    except (OSError, ImportError) as e:
        print(f"error: cannot load the config file: {e}", file=sys.stderr)
    except Exception as e:  # Whatever else a config file's own code raises.
        print(f"error: the config file failed: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)


def config_spec_and_overrides(argv: list[str]) -> tuple[str, list[str]]:
    """The --config file (with its :arg) and the --config.KEY=VALUE overrides, as given, so a
    program can pass them on to the processes it starts."""
    spec, overrides, args = None, [], iter(argv[1:])
    for arg in args:
        if arg.startswith("--config="):
            spec = arg.partition("=")[2]
        elif arg == "--config":
            spec = next(args, None)
        elif arg.startswith("--config."):
            if "=" not in arg:
                print(f"error: write {arg}=VALUE (with '='), so the runs receive it too", file=sys.stderr)
                sys.exit(1)
            overrides.append(arg)
    return spec, overrides


def define_distributed_flags() -> None:
    """The flags that make a program one of several processes of a run (scripts/launch.py,
    SLURM, a Ray placement group, or by hand on each host)."""
    flags.DEFINE_string("coordinator_address", "", "HOST:PORT where process 0 of a run of several "
                        "processes listens; empty: a run of one process (or --distributed=auto).")
    flags.DEFINE_integer("num_processes", 1, "Processes in the run (with --coordinator_address).")
    flags.DEFINE_integer("process_id", 0, "This process's index in [0, num_processes).")
    flags.DEFINE_enum("distributed", "off", ["off", "auto"], "auto: join the other processes of a "
                      "cluster job that JAX detects (SLURM, Kubernetes/JobSet, Cloud TPU, Open MPI).")


def _join_processes() -> None:
    """Joins the run's other processes when the program has the flags and they ask for it."""
    if "coordinator_address" not in flags.FLAGS:
        return
    from research.parallel import distributed

    f = flags.FLAGS
    distributed.initialize(distributed.Launch(f.coordinator_address, f.num_processes, f.process_id,
                                              f.distributed))


def run_or_exit(fn, *args, **kwargs):
    absl_logging.get_absl_handler().python_handler.addFilter(_ProjectInfoOnly())
    threading.excepthook, sys.unraisablehook = _one_line_thread_errors, _one_line_unraisable
    from research import platform

    platform.apply()
    if not _show_tracebacks():
        # absl turns on faulthandler, which prints every Python thread's stack when the process
        # aborts. JAX's distributed client aborts a process whose peer died (its own fatal line
        # says so): a wall of stacks that says nothing more. Segfaults keep their dump.
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
    try:
        _join_processes()
        return fn(*args, **kwargs)
    except UserError as e:
        _exit_with_error(str(e))
    except OSError as e:  # A disk or directory fault: the path and what to do about it.
        if _show_tracebacks():
            raise
        _exit_with_error(describe_os_error(e))
    except Exception as e:
        # Anything else is one line too; RESEARCH_TRACEBACK=1 shows where it came from.
        if _show_tracebacks():
            raise
        first_line = (str(e).strip().splitlines() or [""])[0]
        if _joined_others():  # Most often a collective whose peer has gone.
            _exit_with_error(f"{type(e).__name__}: {first_line}; in a run of several processes this most "
                             "often means another process stopped or died (see its log); rerun the "
                             "launch to resume from the last checkpoint")
        _exit_with_error(f"{type(e).__name__}: {first_line} (RESEARCH_TRACEBACK=1 shows the traceback)")


def _exit_with_error(message: str) -> None:
    """The error line, last: what libraries report while the process shuts down (asyncio's
    unretrieved failures and never-awaited writes of an abandoned save, say) follows from it
    and is not printed."""
    sys.stderr.write(error_line(message))
    if not _show_tracebacks():
        logging.disable(logging.CRITICAL)
        warnings.simplefilter("ignore")
        threading.excepthook = sys.unraisablehook = lambda args: None
    if _joined_others():
        # JAX's distributed shutdown at exit waits at a barrier for every other process, which
        # may be gone or still training: minutes, then a fatal report. This process is done.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)
    sys.exit(1)


def _joined_others() -> bool:
    """Whether this process joined a distributed runtime (asked without importing JAX)."""
    jax = sys.modules.get("jax")
    return jax is not None and jax.distributed.is_initialized()


def summary_line(results: dict) -> str:
    """The final results on one line: each scalar, and when the run stopped early, where its
    best evaluation was."""
    line = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in results.items() if not isinstance(v, (list, dict)))
    if "early_stopped" in results:
        line += f" (stopped early; best at step {results['early_stopped']['best_step']})"
    return line
