"""Preference data from what the experts and the sessions say is wrong (issue 30): pairs of a better and a worse
answer to the same incident, for DPO, and the same answers labelled good or bad one by one, for KTO.

For each session, the chosen answer is the one training uses: the expert's correction, or the session's own
answer where it stands (a reviewer's `correct`, or not reviewed). Rejected answers are
- `review`: the AI's draft, where a reviewer corrected its root cause or query (the merge keeps the draft's
  root cause and query in `corrections`, so the draft is the session with them put back);
- `false_hypothesis`: the same answer naming a hypothesis the session records as ruled out.
Pairs come from the examples of one split, so they follow the split: no test incident is trained on.

Files (`formats.formats=[..., preferences]`, in `preferences/`): TRL's conversational shapes (`<split>_dpo.jsonl`:
prompt, chosen, rejected; `<split>_kto.jsonl`: prompt, completion, label) and LLaMA-Factory's sharegpt ones
(`<split>_dpo_sharegpt.json` with `ranking: true`, `<split>_kto_sharegpt.json` with a `kto_tag`) with the
`dataset_info.json` that maps them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel

from rcatune.prompts import Prompt, render, render_output
from rcatune.schema import TrainingExample

Source = Literal["review", "false_hypothesis"]
SOURCES: tuple[Source, ...] = ("review", "false_hypothesis")


class PreferencePair(BaseModel):
    """A better and a worse answer to one incident."""

    example_id: str
    source: Source
    system: str
    user: str
    chosen: str
    rejected: str

    def prompt_messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def ai_draft(example: TrainingExample) -> TrainingExample | None:
    """The answer a reviewer corrected, as it was before the correction (None: nothing was corrected)."""
    before = {key: (example.corrections or {}).get(key) for key in ("root_cause", "diagnostic_query")}
    before = {key: value for key, value in before.items() if value}
    return example.model_copy(update=before) if before else None


def pairs_of(example: TrainingExample, prompt: Prompt, sources: tuple[Source, ...] = SOURCES) -> list[PreferencePair]:
    """The preference pairs one session gives (its prompt rendered as training renders it)."""
    rejected: list[tuple[Source, str]] = []
    draft = ai_draft(example) if "review" in sources else None
    if draft is not None:
        rejected.append(("review", render_output(draft)))
    if "false_hypothesis" in sources:
        rejected += [("false_hypothesis", render_output(example.model_copy(update={"root_cause": hypothesis})))
                     for hypothesis in example.false_hypotheses]
    seen = {prompt.output}
    pairs = []
    for source, text in rejected:
        if text not in seen:  # a hypothesis that is the root cause itself, or a draft the correction repeats
            seen.add(text)
            pairs.append(PreferencePair(example_id=example.id, source=source, system=prompt.system,
                                        user=prompt.user_message(), chosen=prompt.output, rejected=text))
    return pairs


def preference_pairs(examples: list[TrainingExample], system_prompt: str,
                     sources: tuple[Source, ...] = SOURCES) -> list[PreferencePair]:
    return [pair for example in examples for pair in pairs_of(example, render(example, system_prompt), sources)]


def kto_rows(pairs: list[PreferencePair]) -> Iterator[tuple[PreferencePair, str, bool]]:
    """Each chosen answer once (desirable) and each rejected one (undesirable), in order."""
    last = None
    for pair in pairs:
        if (pair.example_id, pair.chosen) != last:
            last = (pair.example_id, pair.chosen)
            yield pair, pair.chosen, True
        yield pair, pair.rejected, False


LF_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}


def lf_dataset_name(split: str, kind: str) -> str:
    return f"rcatune_{split}_{kind}"


class PreferenceWriter:
    """`preferences/`: TRL's and LLaMA-Factory's DPO and KTO files for each split, row by row."""

    def __init__(self, place: Path, sources: tuple[Source, ...] = SOURCES) -> None:
        place.mkdir(parents=True, exist_ok=True)
        self.place, self.sources, self.info, self.handles, self.counts = place, sources, {}, {}, {}
        self.written: dict[str, int] = {}

    def begin(self, split: str) -> None:
        for kind in ("dpo", "kto"):
            self.handles[f"trl_{kind}"] = (self.place / f"{split}_{kind}.jsonl").open("w", encoding="utf-8")
            name = f"{split}_{kind}_sharegpt.json"
            self.handles[f"lf_{kind}"] = (self.place / name).open("w", encoding="utf-8")
            self.handles[f"lf_{kind}"].write("[")
            self.written[f"lf_{kind}"] = 0
            columns = {"messages": "conversations", "system": "system",
                       **({"chosen": "chosen", "rejected": "rejected"} if kind == "dpo" else {"kto_tag": "kto_tag"})}
            self.info[lf_dataset_name(split, kind)] = {"file_name": name, "formatting": "sharegpt",
                                                       **({"ranking": True} if kind == "dpo" else {}),
                                                       "columns": columns, "tags": LF_TAGS}
        self.counts[split] = {"pairs": 0, "kto_rows": 0}

    def _lf(self, kind: str, row: dict) -> None:
        key = f"lf_{kind}"
        self.handles[key].write(("\n" if self.written[key] == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
        self.written[key] += 1

    def add(self, split: str, example: TrainingExample, prompt: Prompt) -> None:
        pairs = pairs_of(example, prompt, self.sources)
        for pair in pairs:
            messages = pair.prompt_messages()
            self.handles["trl_dpo"].write(json.dumps({
                "prompt": messages, "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}], "example_id": pair.example_id,
                "source": pair.source}, ensure_ascii=False) + "\n")
            self._lf("dpo", {"conversations": [{"from": "human", "value": pair.user}],
                             "chosen": {"from": "gpt", "value": pair.chosen},
                             "rejected": {"from": "gpt", "value": pair.rejected}, "system": pair.system})
        for pair, text, good in kto_rows(pairs):
            self.handles["trl_kto"].write(json.dumps({
                "prompt": pair.prompt_messages(), "completion": [{"role": "assistant", "content": text}],
                "label": good, "example_id": pair.example_id}, ensure_ascii=False) + "\n")
            self._lf("kto", {"conversations": [{"from": "human", "value": pair.user}, {"from": "gpt", "value": text}],
                             "kto_tag": good, "system": pair.system})
            self.counts[split]["kto_rows"] += 1
        self.counts[split]["pairs"] += len(pairs)

    def end(self, split: str) -> None:
        for key, handle in self.handles.items():
            if key.startswith("lf_"):
                handle.write("\n]\n" if self.written[key] else "]\n")
            handle.close()
        self.handles = {}

    def finish(self) -> None:
        (self.place / "dataset_info.json").write_text(json.dumps(self.info, indent=2), encoding="utf-8")
        (self.place / "counts.json").write_text(json.dumps(self.counts, indent=1), encoding="utf-8")

    def abandon(self) -> None:
        for handle in self.handles.values():
            handle.close()


__all__ = ["PreferencePair", "PreferenceWriter", "SOURCES", "ai_draft", "kto_rows", "pairs_of", "preference_pairs"]
