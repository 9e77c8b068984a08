"""The writer the hand-written set scripts share (make_holdout.py, make_set3.py to make_set6.py): each
session tuple becomes a record in the original design's schema, with no `scenario` label, and its true
fault goes to `<name>_truth.json`."""

import json
from pathlib import Path


def write_set(out: Path, name: str, prefix: str, sessions: list, *, timestamp: str, time_range: list[str],
              query: str, remediation: str, confidence: float, seconds: float, prompts: int) -> None:
    """`<name>_sessions.jsonl` and `<name>_truth.json` under `out`; ids are `<prefix>-000`, `-001`..."""
    records, truth = [], {}
    for i, (fault, symptoms, affected, telemetry, signatures, root_cause, topology) in enumerate(sessions):
        sid = f"{prefix}-{i:03d}"
        truth[sid] = fault
        records.append({
            "id": sid, "timestamp": timestamp, "telemetry_context": telemetry,
            "service_topology": topology, "time_range": time_range, "symptoms": symptoms,
            "affected_services": affected, "error_signatures": signatures, "root_cause": root_cause,
            "diagnostic_query": query,
            "critical_paths": [list(reversed(affected))], "remediation_steps": [remediation],
            "human_validated": True, "confidence_score": confidence, "corrections": None, "expert_notes": None,
            "time_to_identification": seconds, "human_prompts_required": prompts, "false_hypotheses": []})
    (out / f"{name}_sessions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (out / f"{name}_truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
