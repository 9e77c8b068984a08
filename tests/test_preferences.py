"""Preference data from reviews and sessions (issue 30, section 1): which pairs a session gives, and the files
TRL and LLaMA-Factory train preferences from, read back by their own loaders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rcatune.demo.generator import generate_sessions
from rcatune.formats import Format, export_formats
from rcatune.preferences import ai_draft, pairs_of, preference_pairs
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT, render
from rcatune.schema import TrainingExample
from rcatune.split import DatasetSplits


@pytest.fixture(scope="module")
def sessions():
    return [TrainingExample.model_validate(r) for r in generate_sessions(12, seed=8)]


def _corrected(example: TrainingExample) -> TrainingExample:
    """What the merge makes of an answer a reviewer corrected: the expert's root cause, the AI's kept aside."""
    return example.model_copy(update={"root_cause": "The expert's root cause.",
                                      "corrections": {"root_cause": example.root_cause}})


def test_a_corrected_session_prefers_the_correction_to_the_ai_draft_and_to_each_ruled_out_hypothesis(sessions):
    session = next(s for s in sessions if len(s.false_hypotheses) >= 2)
    corrected = _corrected(session)
    pairs = pairs_of(corrected, render(corrected, DEFAULT_SYSTEM_PROMPT))
    assert [p.source for p in pairs] == ["review"] + ["false_hypothesis"] * len(session.false_hypotheses)
    assert all(p.chosen.startswith("Root Cause: The expert's root cause.\n") for p in pairs)
    assert pairs[0].rejected == render(session, DEFAULT_SYSTEM_PROMPT).output  # the AI's draft, whole
    assert [p.rejected.splitlines()[0] for p in pairs[1:]] == [f"Root Cause: {h}" for h in session.false_hypotheses]
    assert all(p.rejected.split("\n", 1)[1] == p.chosen.split("\n", 1)[1] for p in pairs), \
        "only the root cause differs: the rest of the answer is the expert's"
    assert ai_draft(session) is None  # never reviewed: no draft, and no review pair
    assert [p.source for p in pairs_of(session, render(session, DEFAULT_SYSTEM_PROMPT))] == \
        ["false_hypothesis"] * len(session.false_hypotheses)


def test_a_hypothesis_that_is_the_root_cause_itself_gives_no_pair(sessions):
    session = sessions[0].model_copy(update={"false_hypotheses": [sessions[0].root_cause, "something else"]})
    pairs = pairs_of(session, render(session, DEFAULT_SYSTEM_PROMPT))
    assert [p.rejected.splitlines()[0] for p in pairs] == ["Root Cause: something else"]


@pytest.fixture(scope="module")
def exported(sessions, tmp_path_factory):
    examples = [_corrected(sessions[0]), *sessions[1:]]
    splits = DatasetSplits(train=examples[:8], val=examples[8:10], test=examples[10:], groups={})
    bundle = export_formats(splits, tmp_path_factory.mktemp("formats") / "formats", [Format.preferences],
                            DEFAULT_SYSTEM_PROMPT)
    return Path(bundle.paths["preferences"]), examples


def test_the_files_hold_every_pair_of_their_split_and_no_other(exported):
    folder, examples = exported
    expected = preference_pairs(examples[:8], DEFAULT_SYSTEM_PROMPT)
    rows = [json.loads(line) for line in (folder / "train_dpo.jsonl").read_text().splitlines()]
    assert [(r["example_id"], r["source"], r["rejected"][0]["content"]) for r in rows] == \
        [(p.example_id, p.source, p.rejected) for p in expected]
    assert {r["example_id"] for r in rows} <= {e.id for e in examples[:8]}
    kto = [json.loads(line) for line in (folder / "train_kto.jsonl").read_text().splitlines()]
    assert sum(r["label"] for r in kto) == len({p.example_id for p in expected})  # each chosen answer once
    assert sum(not r["label"] for r in kto) == len(expected)
    counts = json.loads((folder / "counts.json").read_text())
    assert counts["train"] == {"pairs": len(expected), "kto_rows": len(kto)}
    assert json.loads((folder / "test_dpo_sharegpt.json").read_text()) == [] or counts["test"]["pairs"] > 0


def test_trls_own_loader_renders_the_prompt_training_renders(exported):
    from datasets import load_dataset
    from trl.data_utils import apply_chat_template, is_conversational

    from rcatune.config.model import TinyModelConfig
    from rcatune.inference import Generator, load_base, session_messages
    from rcatune.runtime import Runtime

    folder, examples = exported
    loaded = load_base(TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=1024),
                       Runtime(device="cpu", progress=False))
    pairs = load_dataset("json", data_files=str(folder / "train_dpo.jsonl"), split="train")
    row = pairs[0]
    assert is_conversational(row)
    rendered = apply_chat_template(row, loaded.tokenizer)
    expected_prompt = Generator(loaded).render(session_messages(examples[0], DEFAULT_SYSTEM_PROMPT))
    assert rendered["prompt"] == expected_prompt, "TRL prompts the model as SFT training and serving do"
    assert row["chosen"][0]["content"] in rendered["chosen"] and row["rejected"][0]["content"] in rendered["rejected"]
    kto = load_dataset("json", data_files=str(folder / "train_kto.jsonl"), split="train")
    assert is_conversational(kto[0]) and apply_chat_template(kto[0], loaded.tokenizer)["prompt"] == expected_prompt


LF_LOADER = """
import json, sys
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer
folder, model, template, out = sys.argv[1:5]
counts = {}
for kind, stage in (("dpo", "rm"), ("kto", "kto")):
    model_args, data_args, training_args, finetuning_args, _ = get_train_args({
        "stage": "dpo" if kind == "dpo" else "kto", "do_train": True, "model_name_or_path": model,
        "dataset": "rcatune_train_" + kind, "dataset_dir": folder, "template": template, "cutoff_len": 4096,
        "output_dir": out + "/" + kind, "finetuning_type": "full", "overwrite_cache": True,
        "preprocessing_num_workers": None, "report_to": "none", "use_cpu": True})
    tokenizer_module = load_tokenizer(model_args)
    template_ = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template_, model_args, data_args, training_args, stage, **tokenizer_module)
    counts[kind] = len(module["train_dataset"])
print(json.dumps(counts))
"""


@pytest.mark.slow
def test_llama_factorys_own_loader_keeps_every_row(cli, exported, tmp_path):
    from rcatune.config.model import TinyModelConfig
    from rcatune.config.trainer import LLAMA_FACTORY_TEMPLATES
    from rcatune.models import model_path

    python = Path(cli).parent / "python"
    folder, _ = exported
    model = model_path(TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=1024))
    result = subprocess.run([str(python), "-c", LF_LOADER, str(folder), model, LLAMA_FACTORY_TEMPLATES["tiny"],
                             str(tmp_path)], capture_output=True, text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "DISABLE_VERSION_CHECK": "1", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    written = json.loads((folder / "counts.json").read_text())["train"]
    assert counts == {"dpo": written["pairs"], "kto": written["kto_rows"]}, "LLaMA-Factory dropped rows"
