"""Load what a server serves: folders and registry versions, with one base in memory for all adapters over it.

Each folder is a trained model or an export (`rcatune_model.json` says what it is). Adapters over the
same base share that base: the first is loaded with `PeftModel.from_pretrained`, the others with
`load_adapter`, and each is selected (`set_adapter`) for the duration of its generations; the base itself
is served too (with the adapters disabled), as vLLM lists a base beside its LoRA modules. A merged or
full model is served on its own.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rcatune.config import load_spec
from rcatune.config.model import ModelConfig
from rcatune.errors import ConfigError
from rcatune.inference import LoadedModel, PromptSignature, load_folder
from rcatune.inference.loading import read_description
from rcatune.models import holds_model
from rcatune.runtime import Runtime
from rcatune.serving.engine import ServedModel


@dataclass(frozen=True)
class ModelSource:
    """A folder to serve under `name` (`version`: the registry version it is, if any)."""

    name: str
    folder: Path
    version: Optional[str] = None


def parse_source(text: str) -> ModelSource:
    """'NAME=FOLDER' (or a bare folder, named after it)."""
    name, _, folder = text.rpartition("=")
    path = Path(folder).expanduser()
    if not holds_model(path):
        raise ConfigError(f"{folder!r} holds no model (no config.json or adapter_config.json): point at a "
                          "trained model or an export (RUN_DIR/export/merged, RUN_DIR/training/model)")
    return ModelSource(name or path.name, path.resolve())


def registry_source(model_name: str, version: str) -> ModelSource:
    """A registered version (a number or a stage) as a source named `<model>-v<N>`: its trained model, which
    is an adapter when it was trained as one (so versions over one base share it)."""
    from rcatune.registry import find_version

    found = find_version(model_name, version)
    if not Path(found.model_dir).exists():
        raise ConfigError(f"{found.label}: its model folder {found.model_dir} is gone (the run folder was deleted?); "
                          "train it again or serve another version")
    return ModelSource(found.served_name, Path(found.model_dir), found.number)


def base_name(spec: ModelConfig) -> str:
    """The served name of a base model: its hub id, or the tiny model's name."""
    return spec.name_or_path


def load_pool(sources: list[ModelSource], runtime: Runtime, serve_base: bool = True,
              onnx: bool = False) -> list[ServedModel]:
    """Every source loaded once, adapters over a shared base; in the order given (the first is the default).
    With `onnx` (serving.engine=onnx) each source is its run's export instead: the merged model, whose greedy
    completions generated alone decode through its ONNX graph in onnxruntime (the rest through PyTorch)."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"two models share a name: {names}")
    if onnx:
        return [_with_onnx(source, runtime) for source in sources]
    adapters: dict[str, list[ModelSource]] = {}
    served: dict[str, ServedModel] = {}
    bases: dict[str, ServedModel] = {}
    for source in sources:
        description = read_description(source.folder)
        if (source.folder / "adapter_config.json").exists():
            if description is None:
                raise ConfigError(f"{source.folder} is an adapter without rcatune_model.json: its base is unknown")
            key = json.dumps(description["base_model"], sort_keys=True)
            adapters.setdefault(key, []).append(source)
            continue
        loaded = load_folder(source.folder, runtime)
        parent = base_name(load_spec(description["base_model"])) if description else None
        served[source.name] = ServedModel(source.name, loaded, parent=parent, version=source.version)
    for key, group in adapters.items():
        spec = load_spec(json.loads(key))
        for model in _shared_base(spec, group, runtime):
            (bases if model.name == base_name(spec) else served)[model.name] = model
    ordered = [served[s.name] for s in sources]
    return ordered + (list(bases.values()) if serve_base else [])


def _with_onnx(source: ModelSource, runtime: Runtime) -> ServedModel:
    from rcatune.onnx_export import OnnxCausalLM, find_export

    merged, graph = find_export(source.folder)
    loaded = load_folder(merged, runtime)
    loaded.decoder = OnnxCausalLM(graph)  # with torch's threads, which the server has set
    description = read_description(merged)
    parent = base_name(load_spec(description["base_model"])) if description else None
    return ServedModel(source.name, loaded, parent=parent, version=source.version)


def _shared_base(spec: ModelConfig, group: list[ModelSource], runtime: Runtime) -> list[ServedModel]:
    """The adapters of `group` over one copy of their base, and the base itself."""
    from peft import PeftModel

    from rcatune.inference import load_base
    from rcatune.models.loading import load_tokenizer

    base = load_base(spec, runtime)
    first, *rest = group
    model = PeftModel.from_pretrained(base.model, str(first.folder), adapter_name=first.name)
    for source in rest:
        model.load_adapter(str(source.folder), adapter_name=source.name)
    model.eval()
    served = []
    for source in group:
        tokenizer = load_tokenizer(spec, str(source.folder), keep_saved_template=True)
        loaded = LoadedModel(model, tokenizer, f"adapter {source.folder}", PromptSignature.read(source.folder),
                             runtime, is_adapter=True)
        served.append(ServedModel(source.name, loaded, parent=base_name(spec), use=_selects(model, source.name),
                                  version=source.version))
    base.model = model
    served.append(ServedModel(base_name(spec), base, use=lambda: model.disable_adapter()))
    return served


def _selects(model, adapter: str):
    @contextmanager
    def use():
        model.set_adapter(adapter)
        yield

    return use


def check_signatures(pool: list[ServedModel], system_prompt: Optional[str] = None) -> None:
    """Refuse to serve (SignatureMismatch, naming what differs) a model that would not be prompted as trained."""
    for served in pool:
        served.loaded.check_signature(system_prompt)
