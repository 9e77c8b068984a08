"""A/B tests end to end on the local deployer, and the statistics behind them (issue 26).

    python bench/abtest.py [--out bench/results] [--state DIR] [--units-per-hour 100]

1. Seeded simulations (2,000 experiments each): A/A false-positive rate under 20 looks for the confidence
   sequence and for the naive repeated z-test, one fixed-horizon look, and power against the power analysis.
2. Three versions trained by `run.py` on a fresh state folder: control, a treatment, and a slow treatment (a
   model four times as deep and wide, so its answers take longer).
3. Experiment 1: control deployed, the treatment started beside it, scripted traffic each simulated hour (one
   request per incident, and an expert's feedback drawn from the stated truth: root cause right 0.50 on
   control, 0.65 on treatment), `ab_analyse` after each hour, until the decision promotes the treatment.
4. Experiment 2: the slow treatment against the new control: its p95 latency breaches the guardrail and it is
   switched off without a human.
Writes bench/results/abtest.json and abtest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, ROOT, machine  # noqa: E402

TRUTH = {"control": 0.50, "treatment": 0.65}  # the chance an answer's root cause is right, per arm
VERSION = ["data.size=40", "trainer.epochs=24", "trainer.learning_rate=1e-2", "trainer.prompt_dropout=0",
           "model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024",
           "data.split.min_examples=5", "progress=false", "evaluation.max_new_tokens=48", "evaluation.max_examples=4",
           "evaluation.min_accuracy=0", "evaluation.min_bleu=0", "evaluation.max_perplexity=1e9",
           "evaluation.require_improvement=false"]
SLOW = ["model.hidden_size=256", "model.intermediate_size=512", "model.num_layers=8", "model.num_heads=8"]
ASK = {"model": "rcatune-rca", "messages": [{"role": "user", "content": "checkout returns 500 since 14:02"}],
       "max_tokens": 24}


def simulations() -> dict:
    """The A/A and power figures of tests/test_abtest_stats.py, computed here to be written down."""
    import numpy as np
    from scipy.stats import norm

    from rcatune.abtest.stats import cs_radius, sequential_units_per_arm, units_per_arm

    experiments, alpha = 2000, 0.05

    def looks(p_c, p_t, per_look, n_looks, seed):
        rng = np.random.default_rng(seed)
        c = rng.binomial(per_look, p_c, size=(experiments, n_looks)).cumsum(axis=1)
        t = rng.binomial(per_look, p_t, size=(experiments, n_looks)).cumsum(axis=1)
        return c, t, per_look * np.arange(1, n_looks + 1)

    def rejected(c, t, n, sequential):
        pc, pt = c / n, t / n
        se = np.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n)
        if sequential:
            return (np.abs(pt - pc) > np.vectorize(lambda s, u: cs_radius(s, u, alpha))(se, 2 * n)).any(axis=1)
        pooled = (c + t) / (2 * n)
        return (np.abs(pt - pc) / np.sqrt(pooled * (1 - pooled) * 2 / n) > norm.ppf(1 - alpha / 2)).any(axis=1)

    c, t, n = looks(0.3, 0.3, 50, 20, seed=7)
    fixed_n = units_per_arm(0.3, 0.08, alpha, 0.8)
    seq_n = sequential_units_per_arm(0.3, 0.08, alpha, 0.8)
    pc, pt, pn = looks(0.3, 0.38, fixed_n, 1, seed=11)
    sc, st, sn = looks(0.3, 0.38, seq_n, 1, seed=12)
    return {"experiments": experiments, "alpha": alpha, "looks": 20,
            "aa_false_positive_sequential": float(rejected(c, t, n, True).mean()),
            "aa_false_positive_naive_repeated": float(rejected(c, t, n, False).mean()),
            "aa_false_positive_one_fixed_look": float(rejected(c[:, -1:], t[:, -1:], n[-1:], False).mean()),
            "bound": alpha + 3 * (alpha * (1 - alpha) / experiments) ** 0.5,
            "power_target": 0.8, "effect": "0.30 -> 0.38", "fixed_units_per_arm": fixed_n,
            "fixed_power": float(rejected(pc, pt, pn, False).mean()), "sequential_units_per_arm": seq_n,
            "sequential_power": float(rejected(sc, st, sn, True).mean())}


def run_py(state: Path, *args: str) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="abtest-run-", dir=state))
    env = dict(os.environ, RCATUNE_HOME=str(state), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "run.py", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"run.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "run_summary.json").read_text())


def hour(endpoint: str, units: range, rng: random.Random) -> dict[str, int]:
    import httpx

    seen = {"control": 0, "treatment": 0}
    with httpx.Client(timeout=120) as client:
        for unit in units:
            reply = client.post(f"{endpoint}/v1/chat/completions", json=ASK, headers={"x-rcatune-unit": f"inc-{unit}"})
            arm = reply.headers.get("x-rcatune-arm", "control")
            seen[arm] += 1
            if "x-rcatune-request-id" in reply.headers:
                right = rng.random() < TRUTH[arm]  # what the expert says, drawn from the stated truth
                client.post(f"{endpoint}/v1/feedback", json={"request_id": reply.headers["x-rcatune-request-id"],
                                                             "root_cause_correct": right,
                                                             "human_prompts": rng.choice([1, 2, 2, 3])})
    return seen


def experiment(state: Path, where: list[str], name: str, treatment: str, units_per_hour: int, hours: int,
               start_unit: int, seed: int, extra: list[str]) -> dict:
    started = run_py(state, "pipeline=deployment", *where, "deployment.action=ab_start",
                     f"ab_test.treatment={treatment}", f"ab_test.name={name}", *extra)
    endpoint = started["ab_test"]["record"]["endpoint"]
    rng, looks, unit = random.Random(seed), [], start_unit
    for h in range(1, hours + 1):
        t0 = time.perf_counter()
        hour(endpoint, range(unit, unit + units_per_hour), rng)
        unit += units_per_hour
        summary = run_py(state, "pipeline=deployment", *where, "deployment.action=ab_analyse", *extra)
        analysis = summary["ab_test"]["analysis"]
        looks.append({"hour": h, "units": analysis["units"], "decision": analysis["decision"],
                      "primary": analysis["primary"], "guardrails": analysis["guardrails"],
                      "acted": summary["ab_test"]["acted"], "reasons": analysis["reasons"],
                      "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{name} hour {h}: {analysis['units']} {analysis['decision']} "
              f"{summary['ab_test']['acted'] or ''}", flush=True)
        if summary["ab_test"]["acted"]:
            break
    return {"name": name, "looks": looks}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--state", type=Path, default=None, help="a state folder (default: a fresh temporary one)")
    parser.add_argument("--units-per-hour", type=int, default=100)
    parser.add_argument("--hours", type=int, default=12)
    args = parser.parse_args(argv)
    from rcatune.abtest.stats import sequential_units_per_arm, units_per_arm
    from rcatune.processes import free_port

    began = time.perf_counter()
    figures = {"machine": machine(), "simulations": simulations(), "truth": TRUTH}
    state = args.state or Path(tempfile.mkdtemp(prefix="rcatune-abtest-"))
    versions = {}
    for role, extra in (("control", ["seed=1"]), ("treatment", ["seed=2"]), ("slow", ["seed=3", *SLOW])):
        summary = run_py(state, *VERSION, *extra)
        versions[role] = summary["decisions"]["zenml_model_version"].rsplit(" v", 1)[1]
        print(f"trained {role}: v{versions[role]}", flush=True)
    where = [f"deployer.port={free_port()}", "deployer.name=abtest-bench"]
    run_py(state, "pipeline=deployment", *where, f"deployment.version={versions['control']}", "deployment.force=true",
           "deployment.reason=bench")
    decide = ["ab_test.min_effect=0.15", "ab_test.tuning_units=1000"]
    first = experiment(state, where, "bench-better", versions["treatment"], args.units_per_hour, args.hours, 0, 1,
                       decide + ["deployment.force=true", "deployment.reason=bench"])
    second = experiment(state, where, "bench-slow", versions["slow"], args.units_per_hour, args.hours, 100_000, 2,
                        decide + ["deployment.force=true", "deployment.reason=bench"])
    run_py(state, "pipeline=deployment", *where, "deployment.action=ab_stop", "deployment.reason=bench done")
    run_py(state, "pipeline=deployment", *where, "deployment.action=stop")
    decided = first["looks"][-1]
    units_at_decision = min(decided["units"].values())
    figures.update(versions=versions, experiments=[first, second], units_at_decision_per_arm=units_at_decision,
                   fixed_horizon_units_per_arm=units_per_arm(TRUTH["control"], 0.15),
                   sequential_planned_units_per_arm=sequential_units_per_arm(TRUTH["control"], 0.15),
                   seconds=round(time.perf_counter() - began, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "abtest.json").write_text(json.dumps(figures, indent=1, default=str))
    path = args.out / "abtest.md"
    path.write_text(report(figures))
    print(path.read_text())
    return path


def report(f: dict) -> str:
    s = f["simulations"]
    lines = ["# A/B tests: statistics and two experiments end to end", "",
             f"Machine: {f['machine']}", "",
             f"## Simulations ({s['experiments']} seeded experiments each, alpha {s['alpha']})", "",
             "| | rate |", "|---|---|",
             f"| A/A, {s['looks']} looks, confidence sequence | {s['aa_false_positive_sequential']:.4f} |",
             f"| A/A, {s['looks']} looks, naive repeated z-test | {s['aa_false_positive_naive_repeated']:.4f} |",
             f"| A/A, one fixed-horizon look | {s['aa_false_positive_one_fixed_look']:.4f} |",
             f"| bound (alpha + 3 SE) | {s['bound']:.4f} |", "",
             f"Power ({s['effect']}, target {s['power_target']}): fixed horizon {s['fixed_power']:.3f} at "
             f"{s['fixed_units_per_arm']} units per arm; confidence sequence {s['sequential_power']:.3f} at "
             f"{s['sequential_units_per_arm']} units per arm.", "",
             f"## Experiments (truth: root cause right {f['truth']['control']:.2f} on control, "
             f"{f['truth']['treatment']:.2f} on treatment)", ""]
    for e in f["experiments"]:
        lines += [f"### {e['name']}", "", "| hour | units | decision | primary interval | guardrails | done |",
                  "|---|---|---|---|---|---|"]
        for look in e["looks"]:
            p = look["primary"]
            shown = f"{p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]" if p else "-"
            guards = "; ".join(f"{g['metric']} {g['difference']:+.4g} (margin {g['margin']:.4g})"
                               for g in look["guardrails"])
            lines.append(f"| {look['hour']} | {look['units']} | {look['decision']} | {shown} | {guards} | "
                         f"{look['acted'] or ''} |")
        lines.append("")
    lines += [f"The decision needed {f['units_at_decision_per_arm']} units per arm; a fixed-horizon test planned for "
              f"the same minimum effect (0.15) needs {f['fixed_horizon_units_per_arm']} per arm, read once at the end "
              f"(the confidence sequence, read once, would plan {f['sequential_planned_units_per_arm']}).",
              "", f"Total {f['seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
