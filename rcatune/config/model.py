"""`model=`: the base model, and `model/family=` (chosen by each model file): what a family shares.

A family says once what every model of it needs: the chat template (with `{% generation %}` markers
for answer-only loss) and the LoRA target modules. Model files pick their family in their defaults
list (`- family: llama3`) and add only what is theirs: id, context length, dtype.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from rcatune.config._require import require


class Embeddings(str, enum.Enum):
    minilm = "minilm"  # start from all-MiniLM-L6-v2's word vectors (rcatune.models.tiny)
    random = "random"  # transformers' default initialisation


class Dtype(str, enum.Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class FamilyConfig:
    name: str = MISSING  # llama3 | llama2 | mistral | qwen2 | phi3 | gemma3 | tiny
    chat_template: str = "tokenizer"  # a name in rcatune.models.templates, or 'tokenizer' (the model's own)
    lora_target_modules: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        require(bool(self.lora_target_modules), "model.family.lora_target_modules", "name at least one module")


@dataclass
class ModelConfig:
    name_or_path: str = MISSING
    family: FamilyConfig = MISSING
    context_length: int = 2048
    dtype: Dtype = Dtype.bfloat16
    trust_remote_code: bool = False
    revision: Optional[str] = None

    def __post_init__(self) -> None:
        require(self.context_length > 0, "model.context_length", "must be positive")

    @property
    def chat_template(self) -> str:
        return self.family.chat_template

    @property
    def lora_target_modules(self) -> list[str]:
        return list(self.family.lora_target_modules)


LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TinyModelConfig(ModelConfig):
    """A Llama-architecture model built and cached under the state folder (no hub needed). Its family is
    its own (Llama modules, ChatML with answer-only loss markers), so it needs no `model/family` option."""

    name_or_path: str = "tiny-llama"
    family: FamilyConfig = field(default_factory=lambda: FamilyConfig(
        name="tiny", chat_template="chatml", lora_target_modules=list(LLAMA_MODULES)))
    context_length: int = 1024
    dtype: Dtype = Dtype.float32
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    # 8192 tokens, about 2900 of them whole English words (`english_words`: the commonest words of MiniLM's
    # vocabulary go into the tokenizer's corpus). At 4096 from generated text alone, words people write
    # (`rejected`, `abroad`, `basket`) were pieces of other words. Hand-written sets 1-5: 77 and 71 of 103
    # over two seeds against 65, 66 and 75 before, for about the same training time (docs/evaluation.md).
    vocab_size: int = 8192
    english_words: int = 6000
    # Where its token embeddings start: English word vectors from the MiniLM model rcatune already ships
    # (words it never trained on then start near the ones it did), or random.
    embeddings: Embeddings = Embeddings.minilm

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.english_words >= 0, "model.english_words", "must be 0 (none) or a count of words")


@dataclass
class PackagedModelConfig(ModelConfig):
    """A pretrained model whose weights come in a Python package as a GGUF file (model=gemma3_270m), for machines
    without the hub: converted once into a safetensors folder under the state folder, named by the file's SHA-256,
    then loaded through `from_pretrained` like any checkout (rcatune.models.packaged)."""

    package: str = MISSING  # the import name of the package that assembles the file
    extra: str = MISSING  # the rcatune extra that installs it: pip install 'rcatune[EXTRA]'


SCHEMAS = {"base": ModelConfig, "tiny": TinyModelConfig, "packaged": PackagedModelConfig}
FAMILY_SCHEMAS = {"base": FamilyConfig}
