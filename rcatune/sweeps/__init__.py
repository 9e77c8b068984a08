"""Hyper-parameter sweeps over Optuna (`hparams_search=optuna`): the search space, the study's database, the
trial a run reports to, and the sweep's summary. The Hydra sweeper itself is
`hydra_plugins/rcatune_optuna_sweeper` (Hydra finds plugins only there); it asks Optuna for trials, has Hydra's
launcher run them (joblib: in parallel), and tells Optuna each trial's validation loss.

Why not `hydra-optuna-sweeper`: its last release (1.3.0) declares `optuna<3.0` and its storage fails with the
pinned SQLAlchemy 2, so no study survives a kill or is shared by parallel workers (docs/sweeps.md).
"""
