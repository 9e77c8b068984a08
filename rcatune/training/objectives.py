"""What training optimises (`objective=`): each objective turns a `TrainingJob` into the rows a backend trains
on and the Trainer that computes its loss. `sft`, `dpo` and `kto` (TRL's trainers on preference rows) are built
by the same `setup`, trained by the same `fit`, saved by the same `save`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TrainingData:
    """The rows an objective trains and evaluates on, and what they hold."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    examples: int
    tokens: int  # real (non-padding) training tokens per epoch
    truncated: int
    without_answer: int
    weighted: bool = False  # rows carry per-token loss weights


class Sft:
    """Supervised fine-tuning: the loss is on the answer's tokens only (weighted where the trainer says so); the
    validation loss is the plain answer loss."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def stage(self) -> str:
        return self.config.stage

    def data(self, job, tokenizer, cfg) -> TrainingData:
        from rcatune.training.data import tokenize
        from rcatune.training.packing import pack

        train = tokenize(job.train_set, tokenizer, job.system_prompt, cfg.max_length, cfg.root_cause_weight,
                         cfg.lead_weight)
        val = tokenize(job.val_set, tokenizer, job.system_prompt, cfg.max_length)  # eval loss: unweighted
        rows = pack(train.features, cfg.max_length) if cfg.packing else train.features
        return TrainingData(rows, val.features, len(job.train_set), train.tokens, train.truncated,
                            train.without_answer, weighted="loss_weights" in train.features[0])

    def arguments(self, cfg) -> tuple[Any, dict[str, Any]]:
        """The Trainer's settings class, and what this objective adds to them."""
        from transformers import TrainingArguments

        return TrainingArguments, {}

    def build_trainer(self, data: TrainingData, cfg, tokenizer, model, args, callbacks: list):
        from rcatune.training.data import PadCollator
        from rcatune.training.hf import trainer_class

        cls = trainer_class(data.weighted, cfg.prompt_dropout, tokenizer.pad_token_id, tokenizer.all_special_ids)
        return cls(model=model, args=args, train_dataset=data.train, eval_dataset=data.val,
                   data_collator=PadCollator(tokenizer.pad_token_id, packed=cfg.packing), callbacks=callbacks)


class Dpo:
    """Direct preference optimisation (TRL's DPOTrainer) on the pairs of the train split; the validation loss is
    the DPO loss on the validation split's pairs. The reference model is the model training starts from (the SFT
    version: a frozen copy for full training, the same weights with the adapter off for LoRA)."""

    sequential = False  # whether the trainer must read the rows in order

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def stage(self) -> str:
        return self.config.stage

    def pairs(self, examples, system_prompt: str):
        from rcatune.preferences import preference_pairs

        return preference_pairs(examples, system_prompt, tuple(self.config.sources))

    def rows(self, examples, system_prompt: str) -> list[dict[str, Any]]:
        return [{"prompt": pair.prompt_messages(), "chosen": [{"role": "assistant", "content": pair.chosen}],
                 "rejected": [{"role": "assistant", "content": pair.rejected}]}
                for pair in self.pairs(examples, system_prompt)]

    def answers(self, row: dict[str, Any]) -> list[str]:
        return [row["chosen"][0]["content"], row["rejected"][0]["content"]]

    def require_rows(self, train: list, val: list) -> None:
        """Refuse a split without preference rows, saying where they come from."""
        from rcatune.errors import DataError

        if not train or not val:
            raise DataError(f"objective={self.config.name}: the {'train' if not train else 'validation'} split gives "
                            f"no preference pairs from {list(self.config.sources)}: it needs reviewed sessions whose "
                            "root cause an expert corrected (annotation sync) or sessions that record false_hypotheses")

    def answer_tokens(self, rows: list[dict[str, Any]], tokenizer) -> int:
        """The answers' tokens of `rows` (what a preference epoch trains on, as both backends count it)."""
        return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"])
                   for row in rows for text in self.answers(row))

    def data(self, job, tokenizer, cfg) -> TrainingData:
        train, val = self.rows(job.train_set, job.system_prompt), self.rows(job.val_set, job.system_prompt)
        self.require_rows(train, val)
        tokens = self.answer_tokens(train, tokenizer)
        if self.sequential:  # read in order: shuffled here, once, by the run's seed
            import random

            random.Random(cfg.seed).shuffle(train)
        return TrainingData(train, val, len(job.train_set), tokens, truncated=0, without_answer=0)

    def arguments(self, cfg) -> tuple[Any, dict[str, Any]]:
        from trl import DPOConfig

        return DPOConfig, {**self._shared(cfg), "loss_type": [self.config.loss_type]}

    def _shared(self, cfg) -> dict[str, Any]:
        # rcatune switches checkpointing on the model itself (trainer.gradient_checkpointing); TRL's default is on
        return {"beta": self.config.beta, "max_length": cfg.max_length,
                "train_sampling_strategy": "sequential" if self.sequential else "random",
                "gradient_checkpointing": cfg.gradient_checkpointing}

    def _trainer_class(self):
        from trl import DPOTrainer

        return DPOTrainer

    def build_trainer(self, data: TrainingData, cfg, tokenizer, model, args, callbacks: list):
        from datasets import Dataset

        return self._trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(data.train),
                                     eval_dataset=Dataset.from_list(data.val), processing_class=tokenizer,
                                     callbacks=callbacks)


class Kto(Dpo):
    """KTO (TRL's KTOTrainer): each chosen answer once as desirable and each rejected one as undesirable, no pairs
    needed (a reviewer's correct / incorrect is enough). Its KL term pairs each completion with its neighbours in
    a fixed-order batch, so the rows are shuffled once (by trainer.seed) and read in order."""

    sequential = True

    def rows(self, examples, system_prompt: str) -> list[dict[str, Any]]:
        from rcatune.preferences import kto_rows

        return [{"prompt": pair.prompt_messages(), "completion": [{"role": "assistant", "content": text}],
                 "label": good} for pair, text, good in kto_rows(self.pairs(examples, system_prompt))]

    def answers(self, row: dict[str, Any]) -> list[str]:
        return [row["completion"][0]["content"]]

    def arguments(self, cfg) -> tuple[Any, dict[str, Any]]:
        from trl import KTOConfig

        return KTOConfig, {**self._shared(cfg), "desirable_weight": self.config.desirable_weight,
                           "undesirable_weight": self.config.undesirable_weight}

    def _trainer_class(self):
        from trl import KTOTrainer

        return KTOTrainer

