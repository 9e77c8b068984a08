"""A Hydra sweeper over Optuna's ask/tell API: it asks the study for `n_jobs` trials at a time, has Hydra's
launcher run them (joblib runs them in parallel, each a full rcatune run), reads each run's summary and tells the
study the validation figure, `pruned` or `failed`. The study lives in a database (rcatune.sweeps.study), so the
same command after a kill goes on: finished trials count, the killed ones are asked again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from rcatune.errors import ConfigError, RcatuneError
from rcatune.sweeps.space import override_value, parse_space
from rcatune.sweeps.study import (
    STORAGE_ENV,
    make_pruner,
    open_storage,
    recover_orphans,
    redacted,
    refuse_password,
    storage_url,
    sweeper_id,
)
from rcatune.sweeps.summary import log_parent_run, render, summarise

log = logging.getLogger("rcatune")
VALIDATION_METRICS = {"eval_loss": "minimize"}  # what a sweep may tune on: the validation split's figures


class RcatuneOptunaSweeper(Sweeper):
    def __init__(self, study_name: Optional[str], storage: Optional[str], metric: str, direction: str,
                 n_trials: int, n_jobs: int, max_failures: Optional[int], sampler: str, seed: int,
                 pruner: dict, params: dict) -> None:
        refuse_password(storage, "hydra.sweeper.storage")
        if metric not in VALIDATION_METRICS:
            raise ConfigError(f"hydra.sweeper.metric: {metric!r} is not a validation figure (one of "
                              f"{sorted(VALIDATION_METRICS)}); a sweep must not tune on the test or shift sets "
                              "the gate reports")
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction: {direction!r} is neither minimize nor maximize")
        if n_trials < 1 or n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_trials and n_jobs must be at least 1")
        if sampler not in ("tpe", "random"):
            raise ConfigError(f"hydra.sweeper.sampler: {sampler!r} is not tpe or random")
        self.study_name, self.storage, self.metric, self.direction = study_name, storage, metric, direction
        self.n_trials, self.n_jobs, self.sampler, self.seed = n_trials, n_jobs, sampler, seed
        self.max_failures = n_trials if max_failures is None else max_failures
        self.pruner = OmegaConf.to_container(pruner) if isinstance(pruner, DictConfig) else dict(pruner or {})
        self.params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else dict(params or {})
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: List[str]) -> Any:
        """The search; a bad search space or an unreachable study database is one line and exit 2, as run.py
        reports any configuration error."""
        try:
            return self._sweep(arguments)
        except RcatuneError as error:
            print(f"rcatune: error: {error}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: List[str]) -> Any:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = parse_space(self.params, arguments)
        if not space:
            raise ConfigError("hydra.sweeper.params: the search space is empty; name at least one key with "
                              "choice(), range() or interval() (docs/sweeps.md)")
        url = self.storage or storage_url()
        os.environ[STORAGE_ENV] = url  # every trial, in this process or a worker, opens the same study
        storage = open_storage(url)
        name = self.study_name or self.default_name(space, fixed)
        sampler = (optuna.samplers.TPESampler(seed=self.seed, constant_liar=True) if self.sampler == "tpe"
                   else optuna.samplers.RandomSampler(seed=self.seed))
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    pruner=make_pruner(self.pruner), direction=self.direction, load_if_exists=True)
        self.check_space(study, space)
        study.set_user_attr("pruner", self.pruner)  # trials rebuild it to decide on pruning
        study.set_user_attr("space", {k: str(v) for k, v in space.items()})
        orphans = recover_orphans(study, storage)
        finished = self.finished(study)
        resumed = {"finished_before": finished, "killed_trials_asked_again": orphans} if finished or orphans else {}
        if resumed:
            print(f"sweep {name}: resuming with {finished} finished trial(s)"
                  + (f"; trial(s) {orphans} were killed with their sweep and are asked again" if orphans else ""))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        print(f"sweep {name}: {self.n_trials} trial(s), {self.n_jobs} at a time, {self.direction} {self.metric}; "
              f"study in {redacted(url)}; runs under {self.sweep_dir}")
        failures = 0
        while self.finished(study) < self.n_trials and failures < self.max_failures:
            wanted = min(self.n_jobs, self.n_trials - self.finished(study))
            trials = [study.ask(space) for _ in range(wanted)]
            for trial in trials:
                trial.set_user_attr("sweeper", sweeper_id())
            batch = [fixed + [f"{k}={override_value(v)}" for k, v in trial.params.items()]
                     + [f"sweep.study={name}", f"sweep.trial={trial.number}"] for trial in trials]
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, job_return in zip(trials, returns, strict=True):
                failures += self.tell(study, trial, job_return) == TrialState.FAIL
        summary = summarise(study, fixed, self.metric, self.sweep_dir, redacted(url), resumed)
        summary["mlflow_run_id"] = log_parent_run(summary, self.sweep_dir, space)
        (self.sweep_dir / "sweep_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                                          encoding="utf-8")
        print(render(summary))
        if failures >= self.max_failures and self.finished(study) < self.n_trials:
            print(f"rcatune: error: the sweep stopped after {failures} failed trial(s) (hydra.sweeper.max_failures)",
                  file=sys.stderr)
            sys.exit(2)
        if summary["best"] is None:
            print("rcatune: error: no trial of the sweep completed", file=sys.stderr)
            sys.exit(2)
        return summary

    def tell(self, study, trial, job_return):
        """The study told what the trial's run says (its run_summary.json): its figure, pruned, or failed."""
        from optuna.trial import TrialState

        run_dir = OmegaConf.select(job_return.hydra_cfg, "hydra.runtime.output_dir") if job_return.hydra_cfg else None
        summary_file = Path(str(run_dir)) / "run_summary.json" if run_dir else None
        summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file and summary_file.exists() else {}
        trial.set_user_attr("run_dir", str(run_dir))
        if summary.get("mlflow", {}).get("run_id"):
            trial.set_user_attr("mlflow_run_id", summary["mlflow"]["run_id"])
        status, value = summary.get("status"), summary.get("metrics", {}).get(self.metric)
        if status == "succeeded" and value is not None:
            study.tell(trial, float(value))
            state = TrialState.COMPLETE
        elif status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            state = TrialState.PRUNED
        else:
            error = summary.get("error") or (f"the run has no {self.metric}" if status == "succeeded"
                                             else "the run left no run_summary.json")
            trial.set_user_attr("error", str(error)[:1000])
            study.tell(trial, state=TrialState.FAIL)
            state = TrialState.FAIL
        shown = f" {self.metric}={value:.4f}" if state == TrialState.COMPLETE else ""
        print(f"sweep {study.study_name}: trial {trial.number} {state.name.lower()}{shown} ({run_dir})")
        return state

    @staticmethod
    def finished(study) -> int:
        from optuna.trial import TrialState

        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def default_name(self, space: dict, fixed: Sequence[str]) -> str:
        """The same search, the same study: a name from the pipeline, the space, the fixed overrides and the
        metric, so the same command after a kill resumes it."""
        key = json.dumps({"space": {k: str(v) for k, v in sorted(space.items())}, "fixed": sorted(fixed),
                          "metric": self.metric, "direction": self.direction}, sort_keys=True)
        pipeline = OmegaConf.select(self.config, "pipeline.name", default="run")
        return f"sweep-{pipeline}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    @staticmethod
    def check_space(study, space: dict) -> None:
        """A study resumed with another search space would mix two searches: refused."""
        recorded = study.user_attrs.get("space")
        now = {k: str(v) for k, v in space.items()}
        if recorded and recorded != now:
            raise ConfigError(f"hydra.sweeper.study_name: study {study.study_name!r} was made with another search "
                              "space; name a new study (hydra.sweeper.study_name=...) or sweep the recorded space")
