"""Composition, in one place: from a list of overrides (and a config folder) to a `Job` holding the typed config,
through Hydra's compose API, with the command line's validation and one-line errors. Errors are exceptions
(`ConfigError`, naming the key); only `run.py` turns them into exit 2.

    from rcatune.jobs import compose
    job = compose(["pipeline=prepare", "data.size=50"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Optional

from rcatune.errors import ConfigError, RcatuneError
from rcatune.jobs.job import Job

CONFIG_NAME = "config"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def config_dir() -> Path:
    return PROJECT_ROOT / "conf"


def register(conf: Optional[Path] = None) -> None:
    """The resolvers conf/ uses and the schemas its options start from (idempotent)."""
    from omegaconf import OmegaConf

    from rcatune.config import register_configs
    from rcatune.state import state_dir

    OmegaConf.register_new_resolver("rcatune_state", lambda: str(state_dir()), replace=True)
    OmegaConf.register_new_resolver("rcatune_choices", lambda: choices_help(conf or config_dir()), replace=True)
    register_configs()


def compose(overrides: Iterable[str] = (), conf: Optional[Path | str] = None, run_dir: Optional[str] = None,
            state: Optional[str] = None) -> Job:
    """The job these overrides make, validated as the command line validates it. `run_dir`: where it writes
    (default: conf's `hydra.run.dir`); `state`: the state folder (default: $RCATUNE_HOME, else ./.rcatune)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    conf = Path(conf or config_dir()).resolve()
    overrides = list(overrides)
    previous = os.environ.get("RCATUNE_HOME")
    if state:
        os.environ["RCATUNE_HOME"] = state
    register(conf)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="run"):
            cfg = hydra_compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
            choices = dict(cfg.hydra.runtime.choices)
            run_dir = run_dir or OmegaConf.select(cfg, "hydra.run.dir")
            with open_dict(cfg):
                del cfg["hydra"]
            task = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]  # as Hydra's task overrides
            return build(cfg, choices, task, str(run_dir), conf)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"invalid configuration: {config_error(error)}") from None
    finally:
        GlobalHydra.instance().clear()
        if state:
            if previous is None:
                os.environ.pop("RCATUNE_HOME", None)
            else:
                os.environ["RCATUNE_HOME"] = previous


def build(cfg, choices: dict[str, Any], overrides: list[str], run_dir: str, conf: Path) -> Job:
    """A `Job` from a composed config (Hydra's `main` or the compose API): unknown keys refused, the typed config
    built and checked (`__post_init__`), the git state read."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rcatune.config.unknown import refuse_unknown_keys
    from rcatune.runinfo import git_state
    from rcatune.state import state_dir

    try:
        refuse_unknown_keys(cfg)
        typed = OmegaConf.to_object(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except (RcatuneError, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"invalid configuration: {config_error(error)}") from None
    return Job(overrides=list(overrides), resolved=resolved, choices=dict(choices), run_dir=str(run_dir),
               config_dir=str(conf), project_root=str(PROJECT_ROOT), state=str(state_dir()),
               git=git_state(PROJECT_ROOT), _config=typed)


def config_error(error: Exception) -> str:
    """One line naming the key: the cause a schema's check, OmegaConf or Hydra gave, without OmegaConf's trailer
    (a group's unknown option keeps Hydra's list of the available ones)."""
    from omegaconf.errors import MissingMandatoryValue

    cause = error
    while cause.__cause__ is not None and not isinstance(cause, RcatuneError):
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(cause, MissingMandatoryValue) and key:
        return f"{key}: required value missing; set it on the command line ({key}=...)"
    message = str(cause).split("\n    full_key")[0].strip().removeprefix("invalid configuration: ")
    if key and key not in message:
        message = f"{key}: {message}"
    if "Available options in" in message:  # Hydra lists a group's options one per line, then its search path
        head, _, rest = message.partition("Available options in")
        group, _, listed = rest.partition(":")
        options = listed.split("Config search path:")[0].split()
        message = f"{' '.join(head.split())}; available options in{group}: {', '.join(options)}"
    return " ".join(message.split())


def choices_help(conf: Path) -> str:
    """`--help`'s list of what a user picks: every group under conf/ and its options (schemas left out)."""
    lines = []
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            group = folder.relative_to(conf).as_posix()
            how = {"local": "  (your own, git-ignored: +local=NAME)",
                   "trainer/pace": "  (the hyper-parameters for a model size: +trainer/pace@trainer=NAME; "
                                   "model=tiny picks tiny)",
                   "model/family": "  (set by each model file; model/family=NAME to swap)",
                   "launcher": "  (how the job is started: here, or in a process of its own)",
                   "distributed": "  (training ranks through torchrun; set them with trainer.distributed.*)",
                   "hparams_search": "  (a sweep over Optuna: parallel, pruned, resumable trials; docs/sweeps.md)"}.get(
                group, "")
            lines.append(f"{group}: {', '.join(options)}{how}")
    return "\n".join(lines)
