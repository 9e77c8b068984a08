"""Every option of every config group composes, validates, and its `_target_` binds."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rcatune.config import locate, register_configs
from rcatune.config.schema import RunConfig, SampleDataConfig
from rcatune.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
PATCH_GROUPS = {"experiment", "debug", "local"}


def _options() -> list[tuple[str, str]]:
    """(group, option) for every YAML under conf/, walked recursively."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        relative = path.relative_to(CONF)
        if len(relative.parts) > 1:
            found.append(("/".join(relative.parts[:-1]), path.stem))
    return found


def _overrides(group: str, option: str, tmp_path: Path) -> list[str]:
    extra = {
        "data/jsonl": [f"data.path={tmp_path / 'x.jsonl'}"],
        "data/csv": [f"data.path={tmp_path / 'x.csv'}"],
        "data/clickhouse": [f"data.database_path={tmp_path}"],
        "trainer/hf": ["model=llama3_8b"],  # its max_length (2048) is above the tiny model's context
        "trainer/llama_factory": ["model=llama3_8b"],
    }
    (tmp_path / "x.jsonl").write_text("{}\n")
    (tmp_path / "x.csv").write_text("id\n")
    return [f"{group}={option}", *extra.get(f"{group}/{option}", [])]


@pytest.fixture(autouse=True)
def _hydra():
    from omegaconf import OmegaConf as _O

    _O.register_new_resolver("rcatune_state", lambda: "/tmp/rcatune-test-state", replace=True)
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def _compose(overrides: list[str]) -> RunConfig:
    cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    return OmegaConf.to_object(cfg)


def test_conf_tree_has_every_required_group():
    groups = {group.split("/")[0] for group, _ in _options()}
    assert {"pipeline", "data", "model", "method", "trainer", "evaluation", "stack", "experiment", "debug"} <= groups


@pytest.mark.parametrize("group,option", _options(), ids=lambda v: v)
def test_every_option_composes_and_validates(group, option, tmp_path):
    overrides = _overrides(group, option, tmp_path)
    if group in PATCH_GROUPS:
        overrides = [f"+{group}={option}"] if group == "local" else overrides
    cfg = _compose(overrides)
    assert isinstance(cfg, RunConfig)
    node = getattr(cfg, group, None)
    if group not in PATCH_GROUPS:
        assert node is not None and type(node).__module__ == "rcatune.config.schema"


def _targets(value, path=""):
    if hasattr(value, "__dataclass_fields__"):
        target = getattr(value, "_target_", None)
        if isinstance(target, str):
            yield path, value
        for name in value.__dataclass_fields__:
            yield from _targets(getattr(value, name), f"{path}.{name}" if path else name)


@pytest.mark.parametrize("group,option", [o for o in _options() if o[0] not in PATCH_GROUPS], ids=lambda v: v)
def test_every_target_binds_to_its_signature(group, option, tmp_path):
    cfg = _compose(_overrides(group, option, tmp_path))
    for _path, node in _targets(cfg):
        target = locate(node._target_)
        inspect.signature(target).bind(**node.source_args())


def test_defaults_are_the_documented_ones():
    cfg = _compose([])
    assert cfg.pipeline.name.value == "fine_tuning"
    assert isinstance(cfg.data, SampleDataConfig)
    assert cfg.data.split.fractions == (0.7, 0.15, 0.15)
    assert cfg.stack.name == "rcatune-local"
    assert cfg.model.name_or_path == "tiny-llama"
    default = _compose(["evaluation=default"]).evaluation
    assert (default.min_accuracy, default.max_perplexity, default.min_bleu) == (0.75, 10.0, 0.3)


@pytest.mark.parametrize("override,key", [
    ("trainer.learning_rate=-0.1", "trainer.learning_rate"),
    ("data.split.train=0.9", "data.split"),
    ("data.split.test=-0.1", "data.split.test"),
    ("data.size=0", "data.size"),
    ("data.max_rejected_fraction=1.5", "data.max_rejected_fraction"),
    ("method=lora method.dropout=1.0", "method.dropout"),
    ("trainer.warmup_ratio=1", "trainer.warmup_ratio"),
])
def test_bad_values_fail_naming_the_key(override, key):
    with pytest.raises(Exception) as caught:
        _compose(override.split())
    error = caught.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ConfigError)
    assert str(error).startswith(key)


def test_unknown_option_and_key_fail_at_composition():
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with pytest.raises(MissingConfigException, match="Available options"):
        _compose(["data=nosuch"])
    with pytest.raises(ConfigCompositionException):
        _compose(["data.sise=3"])
    with pytest.raises(ConfigCompositionException) as caught:
        _compose(["method=qlora", "method.quantisation=nf5"])
    assert "expected one of [none, nf4, fp4, int8]" in str(caught.value.__cause__)


def test_missing_and_nonexistent_paths_fail(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        _compose(["data=jsonl"])
    with pytest.raises(Exception, match="data.path: no such file"):
        _compose(["data=jsonl", f"data.path={tmp_path / 'absent.jsonl'}"])


def test_clickhouse_url_must_not_carry_credentials():
    with pytest.raises(Exception, match="must not carry credentials"):
        _compose(["data=clickhouse", "data.url=http://user:secret@host:8123"])


def test_evaluate_pipeline_needs_a_stage_or_a_number():
    assert _compose(["pipeline=evaluate", "pipeline.model_version=3"]).pipeline.model_version == "3"
    with pytest.raises(Exception, match="pipeline.model_version: 'prod' is neither a version number nor one of"):
        _compose(["pipeline=evaluate", "pipeline.model_version=prod"])


def test_max_length_above_the_model_context_fails():
    with pytest.raises(Exception, match="trainer.max_length: 2048 is above the model's context length"):
        _compose(["trainer=hf"])


def test_tiny_model_brings_its_own_method_trainer_and_thresholds():
    tiny = _compose([])
    assert (tiny.method.name, tiny.trainer.epochs, tiny.evaluation.min_accuracy) == ("full", 12, 0.3)
    real = _compose(["model=llama3_8b"])
    assert (real.method.name, real.trainer.learning_rate, real.evaluation.min_accuracy) == ("lora", 2e-4, 0.75)
    assert _compose(["method=lora"]).method.name == "lora"


def test_real_model_configs_are_complete():
    for name in ("llama3_8b", "llama2_13b", "llama3_70b", "mistral_7b", "qwen2_5_7b", "phi3_mini"):
        cfg = _compose([f"model={name}"])
        assert "/" in cfg.model.name_or_path and cfg.model.lora_target_modules and cfg.model.context_length >= 4096
    assert _compose(["model=phi3_mini"]).model.lora_target_modules[0] == "qkv_proj"
