"""One review round in the real Label Studio, reviewed by a script, so a preference run has verdicts to learn
from and the round can be repeated (issue 30).

    make labelstudio-start
    .venv/bin/python scripts/review_round.py --version 1 --size 400 --seed 31
    .venv/bin/python scripts/handwritten_loop.py data=annotated objective=dpo objective.start_from=1   (printed)

1. New sessions from the generator (`--seed`): `pipeline=evaluate` refuses any the version trained on.
2. Version N answers each one (`run.py pipeline=evaluate ... evaluation.compare_with_base=false`).
3. The sessions as the assistant would have exported them, with the model's root cause in place of the session's
   and no review yet, pushed to the root-cause view (`run.py pipeline=annotation`), the version named on the
   pre-annotations.
4. A scripted reviewer, a Label Studio user of its own, gives every task a verdict by one stated rule: the catalog
   fault the generator drew is the truth. The answer is `correct` when the evaluation's yardstick (the catalog
   inference the accuracy figures use) reads that fault in it, else `incorrect`, corrected with the session's own
   root cause, which the generator wrote for that fault.
5. `run.py pipeline=annotation annotation.action=sync` merges the verdicts. A corrected session keeps the model's
   draft, so `data=annotated` trains on the corrections and prefers them to the drafts.

Everything goes under RUN_DIR (`--run-dir`, else a new folder under the state folder's runs/reviews): the
sessions, the answers, what was pushed, the verdicts (verdicts.jsonl) and review_round.json with the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from handwritten_loop import run_py  # noqa: E402  (this folder is on the path of a script run from it)

REVIEWER = "scripted-reviewer@rcatune.local"


def write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def as_exported(session: dict, answer: dict) -> dict:
    """The session as the assistant answering it would export it: the model's root cause, not reviewed yet."""
    from rcatune.prompts import parse_answer

    root_cause = parse_answer(answer["answer"]).root_cause.strip() or answer["answer"].strip()[:500] or "(no answer)"
    return {**session, "root_cause": root_cause, "human_validated": False, "corrections": None,
            "expert_notes": None, "quality_ratings": None}


def verdict(answer: dict, truth_root_cause: str) -> tuple[str, list[dict]]:
    """The rule: the answer is right when the yardstick reads the catalog fault the session was drawn from."""
    if answer["predicted_label"] == answer["reference_label"]:
        return "correct", [_choice("correct")]
    return "incorrect", [_choice("incorrect"), {"from_name": "correct_root_cause", "to_name": "ai_root_cause",
                                                "type": "textarea", "value": {"text": [truth_root_cause]}}]


def _choice(value: str) -> dict:
    return {"from_name": "validation", "to_name": "ai_root_cause", "type": "choices", "value": {"choices": [value]}}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="the registered version whose answers are reviewed")
    which.add_argument("--model-dir", type=Path, help="... or a trained model folder (RUN_DIR/export/merged)")
    parser.add_argument("--size", type=int, default=400, help="sessions to answer and review (default 400)")
    parser.add_argument("--seed", type=int, default=31, help="the generator's seed for them (default 31)")
    parser.add_argument("--project", default="rcatune review round",
                        help="the Label Studio project title, before ' / root_cause' (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, help="where the round's files go (default: a new folder)")
    parser.add_argument("--batch-size", type=int, default=8, help="evaluation.batch_size for the answers")
    parser.add_argument("--max-new-tokens", type=int, default=96,
                        help="evaluation.max_new_tokens for the answers (default 96: the root cause comes first "
                             "and is all the reviewer judges)")
    args = parser.parse_args(argv)
    os.environ.setdefault("RCATUNE_HOME", str(ROOT / ".rcatune"))

    from rcatune.annotation import server
    from rcatune.annotation.client import LabelStudioClient
    from rcatune.annotation.templates import KEY_FIELD
    from rcatune.sources.sample import SampleSource

    running = server.running()
    if not running:
        sys.exit("review_round: Label Studio is not running: start it with `make labelstudio-start`")
    run_dir = args.run_dir or Path(os.environ["RCATUNE_HOME"]) / "runs" / "reviews" / time.strftime("%Y-%m-%d_%H-%M-%S")
    started = time.perf_counter()

    sessions = {r.data["id"]: r.data for r in SampleSource(size=args.size, seed=args.seed).records()}
    write_jsonl(run_dir / "sessions.jsonl", sessions.values())
    answered = run_dir / "answers"
    model = [f"pipeline.model_version={args.version}"] if args.version else [f"pipeline.model_dir={args.model_dir}"]
    run_py(["pipeline=evaluate", *model, "data=jsonl",
            f"data.path={run_dir / 'sessions.jsonl'}", "evaluation.compare_with_base=false",
            f"evaluation.max_examples={args.size}", f"evaluation.batch_size={args.batch_size}",
            f"evaluation.max_new_tokens={args.max_new_tokens}", "progress=false",
            f"hydra.run.dir={answered}"])
    answers = {a["id"]: a for path in sorted((answered / "evaluation").glob("answers_*_tuned.jsonl"))  # data, shift
               for a in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    exported = [as_exported(sessions[key], answer) for key, answer in answers.items()]
    write_jsonl(run_dir / "exported.jsonl", exported)

    project = [f"annotation.project={args.project}", "annotation.templates=[root_cause]"]
    shown = f"rcatune-v{args.version}" if args.version else args.model_dir.parent.parent.name  # on pre-annotations
    run_py(["pipeline=annotation", "data=jsonl", f"data.path={run_dir / 'exported.jsonl'}", *project,
            f"annotation.model_version={shown}", "progress=false", f"hydra.run.dir={run_dir / 'push'}"])

    reviewer = server.add_annotator(REVIEWER)
    client = LabelStudioClient(running["url"], reviewer["token"])
    project_id = client.find_project(f"{args.project} / root_cause")["id"]
    tasks = client.task_keys(project_id, KEY_FIELD)
    done = {t["id"] for t in client.export(project_id) if any(
        a.get("completed_by") == reviewer["id"] for a in t.get("annotations", []))}
    verdicts, counts = [], {"correct": 0, "incorrect": 0, "no_label": 0, "already_reviewed": 0}
    for key, answer in answers.items():
        task_id = tasks[key]
        if answer.get("reference_label") is None:
            counts["no_label"] += 1  # no catalog fault to judge by: left unreviewed
            continue
        said, result = verdict(answer, sessions[key]["root_cause"])
        verdicts.append({"id": key, "task_id": task_id, "verdict": said, "truth": answer["reference_label"],
                         "read": answer["predicted_label"]})
        if task_id in done:
            counts["already_reviewed"] += 1
            continue
        client.create_annotation(task_id, result)
        counts[said] += 1
    write_jsonl(run_dir / "verdicts.jsonl", verdicts)

    run_py(["pipeline=annotation", "annotation.action=sync", *project, "progress=false",
            f"hydra.run.dir={run_dir / 'sync'}"])
    review = json.loads((run_dir / "sync" / "run_summary.json").read_text())["review"]
    report = {"version": args.version, "model_dir": args.model_dir and str(args.model_dir),
              "sessions": len(sessions), "answered": len(answers), **counts,
              "accuracy": round(sum(v["verdict"] == "correct" for v in verdicts) / max(len(verdicts), 1), 4),
              "synced": {k: review.get(k) for k in ("annotations_read", "validated", "root_causes_corrected",
                                                    "examples_out")},
              "seconds": round(time.perf_counter() - started, 1)}
    (run_dir / "review_round.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    if args.version:
        print(f"\nnext: .venv/bin/python scripts/handwritten_loop.py data=annotated objective=dpo "
              f"objective.start_from={args.version}")
    return run_dir


if __name__ == "__main__":
    main()
