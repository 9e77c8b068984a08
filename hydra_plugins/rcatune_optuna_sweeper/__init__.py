"""rcatune's Optuna sweeper for Hydra (`hparams_search=optuna`, or `hydra/sweeper=rcatune_optuna`)."""
