"""Every format round-trips from one renderer; OpenAI rules hold; LLaMA-Factory mapping reads every row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rcatune.demo.generator import generate_sessions
from rcatune.formats import Format, export_formats
from rcatune.formats.openai_chat import check_openai_chat_file
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT, parse_answer, render, to_messages
from rcatune.schema import TrainingExample
from rcatune.split import SplitSpec, split_examples


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(120, seed=8)]
    splits = split_examples(examples, SplitSpec())
    out = tmp_path_factory.mktemp("formats")
    bundle = export_formats(splits, out, list(Format), DEFAULT_SYSTEM_PROMPT)
    prompts = {name: [render(e) for e in members] for name, members in splits.items()}
    return splits, bundle, prompts


def test_answer_round_trips_through_the_renderer():
    for record in generate_sessions(50, seed=9):
        example = TrainingExample.model_validate(record)
        answer = parse_answer(render(example).output)
        assert answer.root_cause == example.root_cause
        assert answer.diagnostic_query == example.diagnostic_query
        assert answer.critical_paths == example.critical_paths
        assert answer.remediation_steps == example.remediation_steps


def test_parse_answer_tolerates_partial_text():
    answer = parse_answer("Root Cause: payment fails\nsome rambling")
    assert answer.root_cause.startswith("payment fails")
    assert answer.diagnostic_query == "" and answer.critical_paths == []


def test_dataset_jsonl_reloads_to_the_same_examples(exported):
    splits, bundle, _ = exported
    for name, members in splits.items():
        lines = open(f"{bundle.paths['dataset']}/{name}.jsonl", encoding="utf-8").read().splitlines()
        assert [TrainingExample.model_validate_json(line) for line in lines] == members


def test_openai_files_follow_openai_rules_and_round_trip(exported):
    splits, bundle, prompts = exported
    for name in ("train", "val", "test"):
        path = f"{bundle.paths['openai']}/{name}.jsonl"
        assert check_openai_chat_file(__import__("pathlib").Path(path), training=name == "train") == []
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        assert [row["messages"] for row in rows] == [to_messages(p) for p in prompts[name]]


def test_openai_checker_catches_each_rule(tmp_path):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    cases = {
        "no valid role": {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "a"}]},
        "empty content": {"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]},
        "no assistant message": {"messages": [{"role": "user", "content": "q"}]},
        "no 'messages' list": {"prompt": "q"},
        "may exceed 50 tokens": {"messages": [{"role": "user", "content": "x" * 60},
                                              {"role": "assistant", "content": "a"}]},
    }
    for expected, bad in cases.items():
        path = tmp_path / "f.jsonl"
        path.write_text("\n".join(json.dumps(x) for x in [good] * 10 + [bad]) + "\n")
        problems = check_openai_chat_file(path, max_tokens=50)
        assert len(problems) == 1 and expected in problems[0] and problems[0].startswith("line 11"), problems
    path.write_text(json.dumps(good) + "\n")
    assert "at least 10" in check_openai_chat_file(path)[0]


def test_hf_dataset_dict_reloads(exported):
    from datasets import load_from_disk

    splits, bundle, prompts = exported
    loaded = load_from_disk(bundle.paths["hf"])
    assert set(loaded) == {"train", "validation", "test", "shift"}
    assert loaded["validation"]["output"] == [p.output for p in prompts["val"]]
    assert loaded["train"]["id"] == [e.id for e in splits.train]
    assert loaded["test"][0]["messages"] == to_messages(prompts["test"][0])


def test_hf_layout_is_what_datasets_writes(exported):
    """The writer lays the dataset out itself (no `save_to_disk`): its features and state match what `datasets`
    derives from the same Arrow file, and the loaded split is memory-mapped, not copied."""
    from datasets import Dataset, Features, load_from_disk

    from rcatune.formats.tabular import HF_DATA_FILE, HF_FEATURES, hf_schema

    assert Features.from_arrow_schema(hf_schema()).to_dict() == HF_FEATURES
    splits, bundle, _ = exported
    folder = Path(bundle.paths["hf"]) / "train"
    loaded = load_from_disk(str(folder))
    assert loaded.cache_files == [{"filename": str(folder / HF_DATA_FILE)}]
    reference = Dataset.from_file(str(folder / HF_DATA_FILE))
    assert loaded.features == reference.features and loaded.num_rows == reference.num_rows == len(splits.train)
    state = json.loads((folder / "state.json").read_text())
    assert len(state["_fingerprint"]) == 16 and state["_data_files"] == [{"filename": HF_DATA_FILE}]


def test_writing_every_format_leaves_pandas_unimported(tmp_path):
    """pyarrow's Python-object conversions import pandas (45 MB resident, a fifth of the data path's peak at 100k
    sessions); the HuggingFace writer goes through Arrow's JSON reader instead."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path\n"
            "from rcatune.demo.generator import generate_sessions\n"
            "from rcatune.formats import Format, export_formats\n"
            "from rcatune.prompts import DEFAULT_SYSTEM_PROMPT\n"
            "from rcatune.schema import TrainingExample\n"
            "from rcatune.split import SplitSpec, split_examples\n"
            "examples = [TrainingExample.model_validate(r) for r in generate_sessions(40, seed=3)]\n"
            "export_formats(split_examples(examples, SplitSpec(min_examples=10)), Path(sys.argv[1]), list(Format),"
            " DEFAULT_SYSTEM_PROMPT)\n"
            "print('pandas' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "formats")], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "formats" / "hf" / "train" / "state.json").exists()


def _read_llama_factory(folder, name):
    """Read a dataset the way LLaMA-Factory's loader does: via dataset_info.json's column mapping."""
    info = json.load(open(f"{folder}/dataset_info.json"))[name]
    rows = json.load(open(f"{folder}/{info['file_name']}"))
    columns = info["columns"]
    if info.get("formatting") == "sharegpt":
        tags = info["tags"]
        out = []
        for row in rows:
            turns = row[columns["messages"]]
            assert [t[tags["role_tag"]] for t in turns] == [tags["user_tag"], tags["assistant_tag"]]
            out.append((row[columns["system"]], turns[0][tags["content_tag"]], turns[1][tags["content_tag"]]))
        return out
    return [(row[columns["system"]], row[columns["prompt"]] + "\n\n" + row[columns["query"]], row[columns["response"]])
            for row in rows]


def test_llama_factory_column_mapping_reads_every_row(exported):
    _, bundle, prompts = exported
    folder = bundle.paths["llama_factory"]
    for split in ("train", "val", "test"):
        expected = [(p.system, p.user_message(), p.output) for p in prompts[split]]
        assert _read_llama_factory(folder, f"rcatune_{split}_alpaca") == expected
        assert _read_llama_factory(folder, f"rcatune_{split}_sharegpt") == expected


def test_csv_round_trips(exported):
    _, bundle, prompts = exported
    with open(bundle.paths["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(v) for v in prompts.values())
    val = [r for r in rows if r["split"] == "val"]
    assert [(r["instruction"], r["input"], r["output"]) for r in val] == [
        (p.instruction, p.input, p.output) for p in prompts["val"]]



def test_llama_factory_arrays_are_one_example_per_line(tmp_path):
    import json

    from rcatune.formats.llama_factory import write_llama_factory
    from rcatune.prompts import Prompt

    prompts = [Prompt("é\n\"x\"", "in", "y", "sys"), Prompt("b", "", "", "sys")]
    info = write_llama_factory(tmp_path, {"train": prompts, "val": []})
    text = (tmp_path / "train_alpaca.json").read_text(encoding="utf-8")
    assert json.loads(text) == [{"instruction": p.instruction, "input": p.input, "output": p.output,
                                 "system": "sys"} for p in prompts] and len(text.splitlines()) == 4
    assert len(json.loads((tmp_path / "train_sharegpt.json").read_text())) == 2
    assert json.loads((tmp_path / "val_alpaca.json").read_text()) == []
    assert set(info) == {"rcatune_train_alpaca", "rcatune_train_sharegpt", "rcatune_val_alpaca",
                         "rcatune_val_sharegpt"}


def test_labels_never_reach_a_prompt_or_a_training_file(tmp_path):
    """scenario, incident_id and phrasing are for splitting and scoring: a model must never learn from them."""
    records = list(generate_sessions(60, seed=12))
    sentinels = {"scenario": "SENTINELSCENARIO", "incident_id": "SENTINELINCIDENT", "phrasing": "SENTINELPHRASING"}
    examples = [TrainingExample.model_validate({**r, **{k: f"{v}{i}" for k, v in sentinels.items()}})
                for i, r in enumerate(records)]
    for example in examples:
        prompt = render(example)
        rendered = " ".join([prompt.system, prompt.instruction, prompt.input, prompt.output])
        assert not any(s in rendered for s in sentinels.values())
    splits = split_examples(examples, SplitSpec(shift_phrasing=None))
    bundle = export_formats(splits, tmp_path, [f for f in Format if f is not Format.dataset], DEFAULT_SYSTEM_PROMPT)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        assert not any(s in text for s in sentinels.values()), path
    assert set(bundle.paths) == {"openai", "hf", "llama_factory", "csv", "preferences"}
