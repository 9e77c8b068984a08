"""Generate realistic diagnostic sessions over the OpenTelemetry Demo, deterministically by seed.

Each session is one incident caused by one of the demo's fault flags (`catalog.SCENARIOS`): its
symptoms (worded several ways, with noisy figures and red herrings from healthy services), the error
signatures, the affected services and their call graph, a ClickHouse query over the OTel exporter's
tables, critical paths, remediation, and the human side of the session (validated or not, the AI's
wrong first answer when an expert corrected it, false hypotheses, prompts and time to identify).
Some incidents are diagnosed twice (same `incident_id`, overlapping windows), as happens in real
teams; the splitter must keep those together.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

from rcatune.demo.catalog import RED_HERRINGS, SCENARIOS, Scenario
from rcatune.demo.queries import render_query

EPOCH = datetime(2026, 3, 2, tzinfo=timezone.utc)
REPEAT_PROBABILITY = 0.15
ENVIRONMENTS = ("production", "production", "staging")
ERRORING_FLAGS = {"productCatalogFailure", "paymentUnreachable", "adFailure", "failedReadinessProbe"}
SLOW_FLAGS = {"adHighCpu", "adManualGc", "recommendationCacheFailure", "imageSlowLoad", "intlShippingSlowdown",
              "loadGeneratorVUs", "kafkaQueueProblems"}


@lru_cache(maxsize=1)
def demo_facts() -> dict[str, Any]:
    """The OpenTelemetry Demo facts shipped inside the package."""
    text = resources.files("rcatune.demo").joinpath("otel_demo_facts.json").read_text(encoding="utf-8")
    return json.loads(text)


def _callee_name(target: str) -> list[str]:
    """'astronomy-db (PostgreSQL)' -> ['astronomy-db']; 'jaeger, grafana' -> both."""
    names = []
    for part in target.split(","):
        name = part.split(" (")[0].split(" ->")[0].strip()
        if name and " " not in name:
            names.append(name)
    return names


@lru_cache(maxsize=1)
def call_graph() -> dict[str, tuple[str, ...]]:
    """Service -> services and stores it calls, from the demo facts (flagd and telemetry plumbing left out)."""
    plumbing = {"flagd", "flagd-ui", "otel-collector", "opamp-server", "jaeger", "grafana", "telemetry-docs",
                "firepit", "chatbot", "mcp", "agent", "external"}
    graph: dict[str, tuple[str, ...]] = {}
    for service in demo_facts()["services"]:
        if service["name"] in plumbing:
            continue
        callees: list[str] = []
        for call in service.get("calls", []):
            callees += [n for n in _callee_name(call["target"]) if n not in plumbing and n not in callees]
        graph[service["name"]] = tuple(callees)
    return graph


def topology_for(services: list[str]) -> dict[str, list[str]]:
    """The call-graph neighbourhood of the given services: each one's callees, and who calls them."""
    graph = call_graph()
    wanted = set(services)
    for name, callees in graph.items():
        if wanted & set(callees):
            wanted.add(name)
    return {name: list(graph.get(name, ())) for name in sorted(wanted) if name in graph or name in services}


class SessionGenerator:
    """Seeded generator of `TrainingExample` JSON records."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self._history: list[dict[str, Any]] = []

    def sessions(self, size: int) -> Iterator[dict[str, Any]]:
        for index in range(size):
            if self._history and self.rng.random() < REPEAT_PROBABILITY:
                base = self.rng.choice(self._history)
                yield self._session(index, base["scenario"], base["incident"])
            else:
                scenario = SCENARIOS[index % len(SCENARIOS)] if index < len(SCENARIOS) else self.rng.choice(SCENARIOS)
                incident = self._new_incident(index, scenario)
                self._history.append({"scenario": scenario, "incident": incident})
                yield self._session(index, scenario, incident)

    def _new_incident(self, index: int, scenario: Scenario) -> dict[str, Any]:
        rng = self.rng
        start = EPOCH + timedelta(hours=index * 7 + rng.randint(0, 6), minutes=rng.randint(0, 59))
        label, value = rng.choice(scenario.variants)
        return {
            "id": f"inc-{self.seed}-{index:06d}",
            "start": start,
            "minutes": rng.choice((15, 20, 30, 45, 60)),
            "variant": label,
            "value": value,
            "environment": rng.choice(ENVIRONMENTS),
        }

    def _figures(self, scenario: Scenario, incident: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        value = incident["value"]
        pct = value * 100 * rng.uniform(0.85, 1.1) if scenario.error_rate else rng.uniform(92, 100)
        if scenario.flag == "adFailure":
            pct = rng.uniform(8, 12)
        secs = value if scenario.latency_secs else rng.choice((2, 3, 4, 6))
        return {
            "v": incident["variant"],
            "pct": f"{min(pct, 100):.0f}",
            "secs": f"{secs * rng.uniform(1.0, 1.08):.1f}",
            "ms": f"{rng.randint(400, 4000)}",
            "n": f"{rng.choice((2, 3, 4, 5, 10))}",
        }

    def _session(self, index: int, scenario: Scenario, incident: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        figures = self._figures(scenario, incident)
        fill = lambda text: text.format(**figures)  # noqa: E731

        shift = timedelta(minutes=rng.randint(-5, 5))
        start = incident["start"] + shift
        end = start + timedelta(minutes=incident["minutes"])
        opened = end + timedelta(minutes=rng.randint(1, 90))

        symptoms = [fill(s) for s in rng.sample(scenario.symptoms, k=rng.randint(2, len(scenario.symptoms)))]
        extra = rng.randint(0, min(2, len(scenario.extra_symptoms)))
        symptoms += [fill(s) for s in rng.sample(scenario.extra_symptoms, k=extra)]
        herrings = [fill(text) for service, text in RED_HERRINGS if service not in scenario.affected]
        symptoms += rng.sample(herrings, k=rng.choice((0, 1, 1, 2)))
        rng.shuffle(symptoms)

        query = rng.choice(scenario.queries)
        validated = rng.random() < 0.6
        false_hypotheses = rng.sample(scenario.false_hypotheses, k=rng.choice((0, 0, 1, 1, 2)))
        corrections = None
        expert_notes = None
        if false_hypotheses and rng.random() < 0.5:
            corrections = {"root_cause": f"AI first answer: {false_hypotheses[0]}."}
            expert_notes = rng.choice((
                f"Ruled out '{false_hypotheses[0]}' after checking the error signatures.",
                f"The AI chased '{false_hypotheses[0]}'; the span attributes pointed elsewhere.",
                "Corrected after comparing the failing spans with the healthy ones.",
            ))
        elif validated and rng.random() < 0.3:
            expert_notes = rng.choice(("Confirmed with the flagd-ui history.", "Matches the runbook.",
                                       "Confirmed by toggling the flag in staging."))
        prompts = 1 + len(false_hypotheses) + rng.choice((0, 0, 1, 2))
        seconds = 60 * scenario.difficulty * rng.lognormvariate(1.8, 0.5) * (1 + 0.6 * len(false_hypotheses))

        return {
            "id": f"sess-{self.seed}-{index:06d}",
            "timestamp": opened.isoformat(),
            "telemetry_context": self._telemetry(scenario, incident, figures, rng),
            "service_topology": topology_for(list(scenario.affected)),
            "time_range": [start.isoformat(), end.isoformat()],
            "symptoms": symptoms,
            "affected_services": list(scenario.affected),
            "error_signatures": [fill(s) for s in scenario.error_signatures],
            "root_cause": fill(rng.choice(scenario.root_causes)),
            "diagnostic_query": render_query(query, start, end),
            "critical_paths": [list(p) for p in scenario.paths],
            "remediation_steps": list(scenario.remediation),
            "human_validated": validated,
            "confidence_score": round(rng.uniform(0.75, 0.98) if validated else rng.uniform(0.35, 0.85), 2),
            "corrections": corrections,
            "expert_notes": expert_notes,
            "time_to_identification": round(seconds, 1),
            "human_prompts_required": prompts,
            "false_hypotheses": false_hypotheses,
            "scenario": scenario.flag,
            "incident_id": incident["id"],
        }

    @staticmethod
    def _telemetry(scenario: Scenario, incident: dict[str, Any], figures: dict[str, Any],
                   rng: random.Random) -> dict[str, Any]:
        services = list(scenario.affected)
        failing = scenario.error_rate or scenario.flag in ERRORING_FLAGS
        error_ratio = float(figures["pct"]) / 100 if failing else 0.0
        slow_ms = float(figures["secs"]) * 1000 if scenario.latency_secs else float(figures["ms"])
        spans = {}
        for rank, service in enumerate(services):
            culprit_side = rank < 2
            spans[service] = {
                "spans": rng.randint(800, 20000),
                "error_ratio": round(error_ratio * rng.uniform(0.6, 1.0), 3) if culprit_side else 0.0,
                "p95_ms": round(slow_ms * rng.uniform(0.8, 1.0)) if (scenario.flag in SLOW_FLAGS and culprit_side)
                else rng.randint(8, 250),
            }
        return {
            "environment": incident["environment"],
            "window_minutes": incident["minutes"],
            "trace_summary": spans,
            "log_lines": rng.randint(200, 9000),
            "alert": rng.choice(("error-rate SLO burn", "latency SLO burn", "on-call page", "customer report",
                                 "anomaly detector")),
        }


def generate_sessions(size: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`size` sessions as JSON-form dicts, identical for the same seed."""
    yield from SessionGenerator(seed).sessions(size)
