"""Mirrors a run to Weights & Biases (`--config.log.wandb_project=NAME`): every row written to
metrics.jsonl, the config, the final results and the plots.

The W&B run's id is kept in the workdir (`wandb_id`), so a resumed run continues the same W&B
run. Rows are logged against our own `step` (W&B's step metric), not W&B's internal counter:
a resumed run writes again the rows its interrupted session wrote after its last checkpoint,
with the same values, and W&B would drop rows at steps it has already passed.

Offline (no API key, or `log.wandb_mode=offline`) the run is written under `<workdir>/wandb`
and uploaded later with `wandb sync <workdir>/wandb/offline-run-*`."""

import glob
import os
import secrets

from absl import logging

from research.errors import UserError

ID_FILE = "wandb_id"


def mode(config) -> str:
    """online | offline: `log.wandb_mode`, where `auto` is online only when W&B has an API key
    (WANDB_API_KEY, or a `wandb login` entry in ~/.netrc) and WANDB_MODE does not say otherwise."""
    chosen = config.log.wandb_mode
    if chosen not in ("auto", "online", "offline"):
        raise UserError(f"log.wandb_mode is {chosen!r}; use auto, online or offline")
    if chosen != "auto":
        return chosen
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return "offline"
    netrc = os.path.expanduser("~/.netrc")
    logged_in = os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()
    return "online" if os.environ.get("WANDB_API_KEY") or logged_in else "offline"


def run_id(workdir: str) -> str:
    """The workdir's W&B run id, made on its first session."""
    path = os.path.join(workdir, ID_FILE)
    if not os.path.exists(path):
        with open(path + ".tmp", "w") as f:
            f.write(secrets.token_hex(4) + "\n")
        os.replace(path + ".tmp", path)
    with open(path) as f:
        return f.read().strip()


class Mirror:
    """One workdir's W&B run, opened for a training session."""

    def __init__(self, workdir: str, config_dict: dict, project: str, *, entity: str = "",
                 run_mode: str = "offline"):
        try:
            import wandb  # Only runs that mirror to W&B need it.
        except ImportError as e:
            raise UserError("log.wandb_project needs the wandb package: scripts/setup.sh installs it "
                            "from requirements.lock, or `pip install 'research[wandb]'`") from e
        self._wandb = wandb
        self.workdir = workdir
        sweep_dir = os.path.dirname(os.path.abspath(workdir))
        in_sweep = os.path.exists(os.path.join(sweep_dir, "sweep.json"))
        self.run = wandb.init(
            project=project, entity=entity or None, dir=workdir, mode=run_mode,
            id=run_id(workdir), resume="allow", name=os.path.basename(os.path.abspath(workdir)),
            group=os.path.basename(sweep_dir) if in_sweep else None, config=config_dict,
            settings=wandb.Settings(console="off", silent=True, save_code=False, disable_git=True,
                                    x_disable_stats=True, reinit="create_new"))
        self.run.config.update(config_dict, allow_val_change=True)  # A resume may change runtime fields.
        self.run.define_metric("step", hidden=True)
        self.run.define_metric("*", step_metric="step")
        self._finished = False

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({"step": step, **scalars})

    def finish(self, results: dict | None) -> None:
        """Ends this session's W&B run: with the final results as its summary and every plot
        in the workdir when training finished (`results`), else marked as preempted."""
        if self._finished:
            return
        self._finished = True
        if results is None:
            self.run.mark_preempting()
            self.run.finish(exit_code=1)
            return
        for name, value in results.items():
            if isinstance(value, int | float | str | bool):
                self.run.summary[name] = value
        plots = sorted(glob.glob(os.path.join(self.workdir, "plots", "*.png")))
        if plots:
            self.run.log({"step": results.get("step"), **{
                f"plots/{os.path.splitext(os.path.basename(p))[0]}": self._wandb.Image(p) for p in plots}})
        self.run.finish()
        if self.run.settings.mode == "offline":
            logging.info("W&B run %s written offline; upload it with: wandb sync %s", self.run.id,
                         self.run.settings.sync_dir)


def open_mirror(workdir: str, config) -> Mirror | None:
    """The workdir's W&B run when the config names a project, else None."""
    if not config.log.wandb_project:
        return None
    return Mirror(workdir, config.to_dict(), config.log.wandb_project, entity=config.log.wandb_entity,
                  run_mode=mode(config))
