"""Logging for a run: one line per message, each failure reported once."""

from __future__ import annotations

import logging
import os
import sys


class StepFailuresReportedByRunner(logging.Filter):
    """ZenML logs a failed step's exception twice (once with its traceback) before re-raising it; the
    runner reports it once itself (a message for rcatune errors, the traceback for bugs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        carried = [record.exc_info[1]] if record.exc_info else []
        carried += [a for a in (record.args if isinstance(record.args, tuple) else ()) if isinstance(a, BaseException)]
        return not carried


def quiet_logs(bars: bool = True) -> None:
    """ZenML's warnings on stderr as plain lines, without its step-failure echoes; MLflow's start-up chatter
    out; the Hugging Face libraries' own progress bars (weights loading, shards) only when `bars`."""
    zenml_logger = logging.getLogger("zenml")
    zenml_logger.propagate = False
    if not any(isinstance(f, StepFailuresReportedByRunner) for h in zenml_logger.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(StepFailuresReportedByRunner())
        zenml_logger.addHandler(handler)
    logging.getLogger("zenml.zen_stores.base_zen_store").setLevel(logging.ERROR)  # "Setting the ... active stack"
    logging.getLogger("zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker").setLevel(
        logging.ERROR)
    import mlflow  # noqa: F401  (importing mlflow resets its logger level: set ours after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not bars:
        # transformers reads this when it is imported (about 1.7 s, which a run that never loads a model need
        # not pay); one already imported is told directly
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
