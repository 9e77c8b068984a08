"""Does scrubbing cost the tuned model quality? The same generated sessions, with personal data and
secrets planted in their logs, symptoms and notes (a different person per incident, some repeated),
trained and evaluated twice: scrub=default and scrub=none. Writes bench/results/scrub_quality.{json,md}.

    python bench/scrub_quality.py [--size 1400] [--smoke]

Not part of `make bench` (it trains twice at the make-run size: about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, ROOT, markdown_table, write  # noqa: E402

METRICS = ["rca_accuracy", "query_valid", "bleu", "rouge_l", "perplexity", "critical_path_f1"]
SMOKE = ["trainer.epochs=1", "evaluation.max_examples=2", "evaluation.max_new_tokens=16", "model.hidden_size=64",
         "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024", "data.split.min_examples=10"]
FIRST = ["jane", "omar", "li", "ana", "kofi", "maria", "sven", "priya"]
LAST = ["doe", "haddad", "wei", "silva", "mensah", "rossi", "berg", "iyer"]


def planted_sessions(size: int, seed: int, path: Path) -> int:
    """Generated sessions with a person (email, IP, phone, card, user id) and a leaked token in each
    incident's logs and notes; a quarter reuse an earlier person. Returns the number planted."""
    from rcatune.demo.generator import generate_sessions

    rng = random.Random(seed)
    people: list[dict[str, str]] = []
    with path.open("w", encoding="utf-8") as out:
        for record in generate_sessions(size, seed=seed):
            if people and rng.random() < 0.25:
                person = rng.choice(people)
            else:
                name = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 999)}"
                person = {"email": f"{name}@example.com", "ip": f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                          "user": f"u-{rng.randint(10**6, 10**7)}", "phone": f"+1 415-555-{rng.randint(1000, 9999)}",
                          "token": "".join(rng.choice("abcdef0123456789") for _ in range(24))}
                people.append(person)
            context = record["telemetry_context"]
            line = (f"INFO frontend: request from {person['ip']} user_id={person['user']} "
                    f"GET /api/cart?access_token={person['token']}")
            for key in ("recent_logs", "log_snippets"):
                if isinstance(context.get(key), list):
                    context[key].append(line)
                    break
            else:
                context["client"] = {"enduser.id": person["user"], "client.address": person["ip"], "log": line}
            record["symptoms"].append(f"A customer ({person['email']}, {person['phone']}) reported it first.")
            record["expert_notes"] = f"Confirmed with {person['email']}."
            out.write(json.dumps(record) + "\n")
    return size


def run(path: Path, scrub: str, run_dir: Path, extra: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 2)))
    command = [sys.executable, "run.py", "data=jsonl", f"data.path={path}", f"scrub={scrub}", "progress=false",
               f"hydra.run.dir={run_dir}", *extra]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    sets = summary["evaluation"]["sets"]
    return {"scrub": summary.get("scrub", {}), "seconds": summary.get("seconds"),
            "sets": {name: {k: figures["tuned"].get(k) for k in METRICS} for name, figures in sets.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    size, extra = (60, SMOKE) if args.smoke else (args.size, [])
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        os.environ.setdefault("RCATUNE_HOME", str(folder / "state"))
        data = folder / "planted.jsonl"
        planted_sessions(size, 7, data)
        figures = {scrub: run(data, scrub, folder / scrub, extra) for scrub in ("default", "none")}
    rows = []
    for name in figures["default"]["sets"]:
        for metric in METRICS:
            on, off = figures["default"]["sets"][name][metric], figures["none"]["sets"][name][metric]
            rows.append([name, metric, off, on, None if on is None or off is None else round(on - off, 4)])
    table = [f"# Scrubbed vs unscrubbed ({size} sessions with planted personal data; tuned model)", "",
             *markdown_table(["set", "metric", "scrub=none", "scrub=default", "difference"], rows), "",
             f"scrub replaced: {figures['default']['scrub'].get('by_type')}"]
    name = "scrub_quality_smoke" if args.smoke else "scrub_quality"
    print(write(name, {"size": size, "runs": figures, "rows": rows}, table, args.out))
    print("\n".join(table))


if __name__ == "__main__":
    main()
