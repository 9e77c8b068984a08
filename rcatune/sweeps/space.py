"""The search space: Hydra's sweep syntax (the same a user writes for `-m`) turned into Optuna distributions.

    trainer.learning_rate: tag(log, interval(1e-5, 1e-2))   # a float on a log scale
    trainer.warmup_ratio: interval(0.0, 0.2)                # a float
    trainer.batch_size: choice(2, 4, 8)                      # one of these
    trainer.epochs: range(1, 4)                              # an integer in [1, 4)
    method.rank: tag(int, interval(4, 32))                   # an integer in [4, 32]

A plain value fixes the key for every trial. The command line's sweep arguments (`data.size=100,200`) join the
space the same way.
"""

from __future__ import annotations

from typing import Any, Iterable

from rcatune.errors import ConfigError


def parse_space(params: dict[str, Any], arguments: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """(key -> Optuna distribution, the fixed overrides every trial gets) from the sweeper's `params` and the
    command line's arguments."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in flatten(params or {}).items()] + list(arguments)
    try:
        overrides = parser.parse_overrides(lines)
    except Exception as error:
        raise ConfigError(f"hydra.sweeper.params: {' '.join(str(error).split())}") from None
    space, fixed = {}, []
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        space[key] = distribution(key, override)
    return space, fixed


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Keys as dotted paths. The YAML writes `trainer.learning_rate: ...` (one key); the command line's
    `+hydra.sweeper.params.trainer.batch_size=...` nests (`trainer: {batch_size: ...}`). A nested key wins over
    the same dotted one, as the command line wins over the file."""
    flat: dict[str, Any] = {}
    nested = {k: v for k, v in params.items() if isinstance(v, dict)}
    for key, value in params.items():
        if key not in nested:
            flat[f"{prefix}{key}"] = value
    for key, value in nested.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def distribution(key: str, override) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    tags = set(getattr(sweep, "tags", ()) or ())
    unknown = tags - {"log", "int"}
    if unknown:
        raise ConfigError(f"hydra.sweeper.params.{key}: unknown tag(s) {sorted(unknown)}; use log and/or int")
    if isinstance(sweep, ChoiceSweep):
        if not sweep.list:
            raise ConfigError(f"hydra.sweeper.params.{key}: choice() needs at least one value")
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"hydra.sweeper.params.{key}: the range is empty")
        return CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        if low is None or high is None or not low < high:
            raise ConfigError(f"hydra.sweeper.params.{key}: interval({low}, {high}) needs low < high")
        if "log" in tags and low <= 0:
            raise ConfigError(f"hydra.sweeper.params.{key}: a log interval needs low > 0 (got {low})")
        if "int" in tags or (isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool)):
            return IntDistribution(int(low), int(high), log="log" in tags)
        return FloatDistribution(float(low), float(high), log="log" in tags)
    raise ConfigError(f"hydra.sweeper.params.{key}: {type(sweep).__name__} cannot be searched; use choice(), "
                      "range() or interval()")


def override_value(value: Any) -> str:
    """A sampled value as a command-line override writes it (a string quoted when Hydra's grammar needs it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) or value is None:
        return "null" if value is None else str(value)
    text = str(value)
    plain = text.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum()
    return text if plain else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
