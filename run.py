#!/usr/bin/env python
"""rcatune's one entry point: compose the config (Hydra), validate it, run its pipeline (ZenML).

    python run.py                                   # the default fine-tuning pipeline on sample data
    python run.py pipeline=prepare data=jsonl data.path=sessions.jsonl
    python run.py -m data.size=100,200              # a sweep: one ZenML run and one MLflow run each
    python run.py --help                            # groups, options and examples

Hydra stays here: the composed config is converted once into typed objects, and nothing below sees
Hydra. `main` returns the run's primary metric, so a Hydra sweeper can optimise it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("RCATUNE_HOME", str(ROOT / ".rcatune"))
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException  # noqa: E402

from rcatune.config import register_configs  # noqa: E402
from rcatune.errors import Interrupted, RcatuneError  # noqa: E402
from rcatune.state import state_dir  # noqa: E402


def _choices() -> str:
    """`--help`'s list of what a user picks: every group under conf/ and its options (schemas left out)."""
    conf = ROOT / "conf"
    lines = []
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            group = folder.relative_to(conf).as_posix()
            how = {"local": "  (your own, git-ignored: +local=NAME)",
                   "trainer/pace": "  (the hyper-parameters for a model size: +trainer/pace@trainer=NAME; "
                                   "model=tiny picks tiny)",
                   "model/family": "  (set by each model file; model/family=NAME to swap)"}.get(group, "")
            lines.append(f"{group}: {', '.join(options)}{how}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("rcatune_state", lambda: str(state_dir()), replace=True)
OmegaConf.register_new_resolver("rcatune_choices", _choices, replace=True)
register_configs()


def _fail(message: str) -> None:
    print(f"rcatune: error: {message}", file=sys.stderr)
    sys.exit(2)


def _config_error(error: Exception) -> str:
    cause = error
    while cause.__cause__ is not None and not isinstance(cause, RcatuneError):
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(cause, MissingMandatoryValue) and key:
        return f"{key}: required value missing; set it on the command line ({key}=...)"
    return str(cause).split("\n    full_key")[0]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    from rcatune.config.unknown import refuse_unknown_keys

    try:
        refuse_unknown_keys(cfg)
        run_cfg = OmegaConf.to_object(cfg)
    except (RcatuneError, OmegaConfBaseException, ValueError) as error:
        _fail(f"invalid configuration: {_config_error(error)}")
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)

    from rcatune import runner
    from rcatune.report import print_summary, print_summary_file
    from rcatune.runtime import Runtime

    try:
        runner.load_pipelines("pipelines")
        context = runner.run_context(OmegaConf.to_container(cfg, resolve=True), dict(hydra_cfg.runtime.choices),
                                     list(hydra_cfg.overrides.task), run_dir, ROOT,
                                     Runtime.detect(run_cfg.device.value, run_cfg.progress))
        summary = runner.run(run_cfg, context)
    except Interrupted as error:  # Ctrl-C: one line, the summary says so, exit as shells expect (128 + SIGINT)
        print_summary_file(run_dir, with_error=False)
        print(f"rcatune: {error}", file=sys.stderr)
        sys.exit(130)
    except RcatuneError as error:
        print_summary_file(run_dir, with_error=False)
        _fail(str(error))
    print_summary(summary)
    return summary.primary_metric["value"] if summary.primary_metric else None


if __name__ == "__main__":
    main()
