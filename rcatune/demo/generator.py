"""Generate diagnostic sessions over the OpenTelemetry Demo, deterministically by seed.

Each session is one incident: a fault of the demo (`faults.FAULTS`) or, now and then, one outside the
catalog (`faults.OUTSIDE`: the right answer names no known fault and asks for investigation). A
session is told in one phrasing bank (its root cause and remediation; its symptoms mostly, a training
session mixing in the other training banks' wordings) and shows only part of what the fault does: a
random subset of its signals, sometimes without the most telling one, among blips from healthy services
and red herrings that other faults produce. Its telemetry comes in one of several layouts (the banks'
own, and free-form ones: dashboard dumps, per-service records, prose; varied keys, units and service
spellings), drawn independently of the wording. The services it lists as affected and its topology (the
whole call graph, the graph around what it lists, or none) vary from session to session: fixed per fault,
they were a lookup key the model read the fault off. A good share of sessions show only a sliver (one or
two symptoms, at most one log line, a service or two), as a quick ticket does, and a training session's
symptom or pasted error signature is now and then clipped to part of its words, so a fault is known by
its words and not by one exact string. Some training sessions are bare tickets (symptoms only: no log
line, no figures), and some carry part of what people saw in the telemetry under a key someone made up
(`events`, `findings`...), as hand-written sessions do: a model trained without them read the fault off
log lines and per-service figures and barely read the symptoms (9 of hand-written set 4's 22 sessions, 18
of which have no log line). Log lines and error signatures are the ones the real services write; a flag
name appears only where they write it. The answer names the fault first, then its telling, then the
evidence, so the diagnosis does not hang on copying from the session.

Bank `d` is never trained on: sessions told in it (its wording and its own layout) form the phrasing-shift
split. Some incidents are
diagnosed twice (same `incident_id`, overlapping windows, the same bank), as happens in real teams;
the splitter keeps those together.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

from rcatune.demo.faults import BANKS, FAULTS, HEALTHY_LOGS, NOISE, NONE, OUTSIDE, SHIFT_BANK, TRAINING_BANKS, Fault
from rcatune.demo.queries import render_query

EPOCH = datetime(2026, 3, 2, tzinfo=timezone.utc)
REPEAT_PROBABILITY = 0.15
OUTSIDE_PROBABILITY = 0.07
BANK_WEIGHTS = {"a": 0.3, "b": 0.3, "c": 0.25, "d": 0.15}  # d: the phrasing-shift split
MIX_KEEP = 0.5  # a training session's symptom keeps its session's bank this often, else another training bank
OWN_LAYOUT = 0.4  # a training session's telemetry takes its bank's layout this often, else another one
LAYOUTS = ("a", "b", "c", "notes", "records", "prose")  # telemetry layouts training sessions draw from
AFFECTED_SHOWN = 0.8  # each of the fault's affected services is listed this often (at least one is)
AFFECTED_BLIP = 0.3  # a session lists a healthy service that blipped this often
TOPOLOGY_FULL, TOPOLOGY_AROUND = 0.3, 0.55  # whole call graph / graph around the listed services; else none
SPARSE = 0.35  # a session shows only a sliver of its evidence this often: one or two symptoms, at most one log
#                line, one or two services' figures (every piece has to count on its own, as in a short ticket)
TICKET = 0.2  # a training session is a bare ticket this often: what people saw, no log line, no figures (the
#               telemetry is empty or says where it came from): the symptoms have to carry the fault
PASTED = 0.35  # a session's telemetry holds some of its observations this often (pasted events, alerts, notes):
#               people paste what they saw wherever it fits, so evidence has to be read in any field
PASTED_KEYS = ("events", "alerts", "oncall_notes", "seen_on_call", "k8s_events", "findings", "timeline", "what_we_saw")
FRAGMENT = 0.25  # a training session's symptom or pasted error signature is cut to part of its words this often
ENVIRONMENTS = ("production", "production", "staging")
SPANS = {
    "frontend-proxy": "ingress", "frontend": "GET /api/products", "frontend-web": "documentFetch",
    "product-catalog": "oteldemo.ProductCatalogService/GetProduct", "cart": "oteldemo.CartService/GetCart",
    "checkout": "oteldemo.CheckoutService/PlaceOrder", "payment": "oteldemo.PaymentService/Charge",
    "currency": "oteldemo.CurrencyService/Convert", "shipping": "/ship-order", "quote": "/getquote",
    "email": "/send_order_confirmation", "recommendation": "oteldemo.RecommendationService/ListRecommendations",
    "ad": "oteldemo.AdService/GetAds", "kafka": "orders publish", "fraud-detection": "orders process",
    "accounting": "orders process", "load-generator": "feature_flag.evaluate", "image-provider": "GET /images",
    "otel-collector": "export", "valkey-cart": "HGET",
}
HEALTHY = ("currency", "quote", "product-catalog", "cart", "shipping", "email", "recommendation", "payment")


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
    """The call graph around the given services: each one's callees, and the services that call them (with
    only those calls)."""
    graph = call_graph()
    wanted = set(services)
    topology = {name: list(graph.get(name, ())) for name in services if name in graph or name in services}
    for name, callees in graph.items():
        if name not in wanted and wanted & set(callees):
            topology[name] = [c for c in callees if c in wanted]
    return dict(sorted(topology.items()))


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
                yield self._session(index, base["fault"], base["incident"])
                continue
            if index < len(FAULTS):
                fault = FAULTS[index]
            elif self.rng.random() < OUTSIDE_PROBABILITY:
                fault = self.rng.choice(OUTSIDE)
            else:
                fault = self.rng.choice(FAULTS)
            incident = self._new_incident(index, fault)
            self._history.append({"fault": fault, "incident": incident})
            yield self._session(index, fault, incident)

    def _new_incident(self, index: int, fault: Fault) -> dict[str, Any]:
        rng = self.rng
        start = EPOCH + timedelta(hours=index * 7 + rng.randint(0, 6), minutes=rng.randint(0, 59))
        label, value = rng.choice(fault.variants)
        bank = rng.choices(BANKS, weights=[BANK_WEIGHTS[b] for b in BANKS])[0]
        return {"id": f"inc-{self.seed}-{index:06d}", "start": start, "minutes": rng.choice((15, 20, 30, 45, 60)),
                "variant": label, "value": value, "environment": rng.choice(ENVIRONMENTS), "bank": bank}

    def _figures(self, fault: Fault, incident: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        value = incident["value"]
        pct = value * 100 * rng.uniform(0.85, 1.1) if fault.error_rate else rng.uniform(92, 100)
        if fault.id == "adFailure":
            pct = rng.uniform(8, 12)
        secs = value if fault.latency_secs else rng.choice((2, 3, 4, 6))
        pct = min(pct, 100)
        return {"v": incident["variant"], "pct": f"{pct:.0f}", "ratio": f"{pct / 100:.2f}",
                "secs": f"{secs * rng.uniform(1.0, 1.08):.1f}", "ms": f"{rng.randint(400, 4000)}",
                "n": f"{rng.choice((2, 3, 4, 5, 10))}"}

    def _symptoms(self, fault: Fault, bank: str, fill, sparse: bool) -> list[str]:
        rng = self.rng
        shown = rng.sample(fault.signals, k=rng.choice((1, 1, 2)) if sparse else rng.randint(1, len(fault.signals)))
        symptoms = [self._fragment(fill(rng.choice(s.says[self._wording(bank)])), bank) for s in shown]
        noise = NOISE[bank]
        symptoms += [text for service, text in rng.sample(noise, k=rng.choice((0, 1) if sparse else (0, 1, 1, 2)))
                     if service not in fault.affected]
        if rng.random() < 0.3:  # a red herring: what another fault would also show
            other = rng.choice([f for f in FAULTS if f.id != fault.id])
            weak = [s for s in other.signals if not s.telling]
            if weak:
                symptoms.append(fill(rng.choice(rng.choice(weak).says[bank])))
        rng.shuffle(symptoms)
        return symptoms

    def _fragment(self, text: str, bank: str) -> str:
        """Now and then only part of a training session's line (a clipped alert, a half-pasted log line): a
        fault has to be known by its words, not by one exact string."""
        rng = self.rng
        words = text.split()
        if bank == SHIFT_BANK or len(words) < 4 or rng.random() >= FRAGMENT:
            return text
        keep = rng.randint(max(2, len(words) // 2), len(words) - 1)
        start = rng.randint(0, len(words) - keep)
        return " ".join(words[start:start + keep])

    def _wording(self, bank: str) -> str:
        """The bank one symptom is worded in: a training session mixes the training banks (people on one call
        write differently), the held-out bank stays whole."""
        if bank == SHIFT_BANK or self.rng.random() < MIX_KEEP:
            return bank
        return self.rng.choice(TRAINING_BANKS)

    def _session(self, index: int, fault: Fault, incident: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        bank = incident["bank"]
        figures = self._figures(fault, incident)

        def fill(text: str) -> str:
            return text.format(**figures)

        shift = timedelta(minutes=rng.randint(-5, 5))
        start = incident["start"] + shift
        end = start + timedelta(minutes=incident["minutes"])
        opened = end + timedelta(minutes=rng.randint(1, 90))
        ticket = bank != SHIFT_BANK and rng.random() < TICKET  # the held-out bank keeps its own layout
        sparse = not ticket and rng.random() < SPARSE
        logs = [(s, sev, fill(body)) for s, sev, body in fault.logs if rng.random() < 0.65]
        if ticket:
            logs = []
        if sparse:
            logs = rng.sample(logs, k=min(len(logs), rng.choice((0, 1, 1))))
        affected = self._affected(fault)

        validated = rng.random() < 0.6
        false_hypotheses = rng.sample(fault.false_hypotheses, k=min(len(fault.false_hypotheses),
                                                                    rng.choice((0, 0, 1, 1, 2))))
        corrections, expert_notes = self._review(false_hypotheses, validated)
        prompts = 1 + len(false_hypotheses) + rng.choice((0, 0, 1, 2))
        seconds = 60 * fault.difficulty * rng.lognormvariate(1.8, 0.5) * (1 + 0.6 * len(false_hypotheses))
        query = rng.choice(fault.queries)
        symptoms = self._symptoms(fault, bank, fill, sparse)
        telemetry = self._ticket(incident) if ticket else self._telemetry(fault, incident, figures, logs, bank, sparse)
        if bank != SHIFT_BANK:
            telemetry = self._paste(symptoms, telemetry)
        return {
            "id": f"sess-{self.seed}-{index:06d}",
            "timestamp": opened.isoformat(),
            "telemetry_context": telemetry,
            "service_topology": self._topology(affected),
            "time_range": [start.isoformat(), end.isoformat()],
            "symptoms": symptoms,
            "affected_services": affected,
            "error_signatures": [self._fragment(body, bank) for _service, _severity, body in logs],
            "root_cause": self._root_cause(fault, bank, [s for s in affected if s in fault.affected], logs, fill),
            "diagnostic_query": render_query(query, start, end),
            "critical_paths": [list(p) for p in fault.paths],
            "remediation_steps": [fill(step) for step in fault.remediation[bank]],
            "human_validated": validated,
            "confidence_score": round(rng.uniform(0.75, 0.98) if validated else rng.uniform(0.35, 0.85), 2),
            "corrections": corrections,
            "expert_notes": expert_notes,
            "time_to_identification": round(seconds, 1),
            "human_prompts_required": prompts,
            "false_hypotheses": false_hypotheses,
            "scenario": fault.id if fault.in_catalog else NONE,
            "incident_id": incident["id"],
            "phrasing": bank,
        }

    def _ticket(self, incident: dict[str, Any]) -> dict[str, Any]:
        """A bare ticket's telemetry: nothing, or where and when it was seen."""
        rng = self.rng
        return rng.choice(({}, {"environment": incident["environment"]}, {"window": f"{incident['minutes']}m"},
                           {"source": rng.choice(("on-call page", "customer report", "slack", "status page"))}))

    def _paste(self, symptoms: list[str], telemetry: dict[str, Any]) -> dict[str, Any]:
        """Now and then some observations sit in the telemetry (under a key someone made up, as a list, a line
        or one string) and not among the symptoms; one observation, if it is the only one, is in both."""
        rng = self.rng
        if rng.random() >= PASTED:
            return telemetry
        pasted = rng.sample(symptoms, k=rng.randint(1, max(1, len(symptoms) - 1)))
        if len(symptoms) > 1:
            symptoms[:] = [s for s in symptoms if s not in pasted] or symptoms[:1]
        value: Any = pasted if len(pasted) > 1 and rng.random() < 0.7 else "; ".join(pasted)
        items = list(telemetry.items())
        key = rng.choice([k for k in PASTED_KEYS if k not in telemetry])
        items.insert(rng.randint(0, len(items)), (key, value))
        return dict(items)

    def _affected(self, fault: Fault) -> list[str]:
        """The services the session lists as affected: most of the fault's (any one may be missing), now and
        then a healthy service that blipped, in any order. Never the fault's fixed set: that would name the
        fault by itself."""
        rng = self.rng
        shown = [s for s in fault.affected if rng.random() < AFFECTED_SHOWN] or [rng.choice(fault.affected)]
        if rng.random() < AFFECTED_BLIP:
            shown += rng.sample([s for s in HEALTHY if s not in shown], k=rng.choice((1, 1, 2)))
        rng.shuffle(shown)
        return shown

    def _topology(self, affected: list[str]) -> dict[str, list[str]]:
        """The service topology a session carries: the whole call graph, the graph around the affected
        services and a few others, or none, drawn apart from the fault (a topology per fault was a lookup
        key: the model read the fault off it and not off the errors)."""
        rng = self.rng
        draw = rng.random()
        if draw < TOPOLOGY_FULL:
            return {name: list(callees) for name, callees in call_graph().items() if callees}
        if draw < TOPOLOGY_FULL + TOPOLOGY_AROUND:
            others = [s for s in call_graph() if s not in affected]
            return topology_for(affected + rng.sample(others, k=rng.randint(0, 3)))
        return {}

    def _root_cause(self, fault: Fault, bank: str, affected: list[str], logs: list[tuple[str, str, str]],
                    fill) -> str:
        """The fault first (its id and component, or that no known fault matches), then its telling, then the
        evidence (where it shows, and the first error it logs): the diagnosis is decided before anything is
        copied from the session."""
        evidence = f"Seen in {', '.join(affected)}"
        if logs:
            first = logs[0][2]
            evidence += f" ('{first if len(first) <= 60 else first[:57].rsplit(' ', 1)[0] + '...'}')"
        return " ".join(filter(None, [fault.lead, fill(self.rng.choice(fault.root_causes[bank])), evidence + "."]))

    def _review(self, false_hypotheses: list[str], validated: bool) -> tuple[Any, Any]:
        rng = self.rng
        if false_hypotheses and rng.random() < 0.5:
            notes = rng.choice((f"Ruled out '{false_hypotheses[0]}' after checking the error signatures.",
                                f"The AI chased '{false_hypotheses[0]}'; the span attributes pointed elsewhere.",
                                "Corrected after comparing the failing spans with the healthy ones."))
            return {"root_cause": f"AI first answer: {false_hypotheses[0]}."}, notes
        if validated and rng.random() < 0.3:
            return None, rng.choice(("Confirmed with the flagd-ui history.", "Matches the runbook.",
                                     "Confirmed by toggling the flag in staging."))
        return None, None

    # ------------------------------------------------------------------------------------------ telemetry
    def _stats(self, fault: Fault, figures: dict[str, Any], sparse: bool) -> dict[str, dict[str, float]]:
        """Requests, error ratio and p95 (ms) per service shown: the affected ones (most of them, or one or two
        in a sparse session) and a few healthy ones."""
        rng = self.rng
        profile = fault.profile
        pct = float(figures["pct"]) / 100
        if sparse:
            services = rng.sample(fault.affected, k=min(len(fault.affected), rng.choice((1, 1, 2))))
        else:
            services = [s for s in fault.affected if rng.random() < 0.85] or [fault.affected[0]]
        services += rng.sample([s for s in HEALTHY if s not in fault.affected], k=rng.randint(0, 1 if sparse else 2))
        stats = {}
        for service in services:
            requests = rng.randint(800, 20000) * profile.traffic.get(service, 1.0)
            errors = profile.errors.get(service, 0.0) * pct * rng.uniform(0.7, 1.0)
            slow = profile.slow.get(service)
            if slow == "secs":
                p95 = float(figures["secs"]) * 1000 * rng.uniform(0.85, 1.0)
            elif slow == "ms":
                p95 = float(figures["ms"]) * rng.uniform(0.7, 1.0)
            else:
                p95 = rng.randint(8, 250)
            stats[service] = {"requests": round(requests), "error_ratio": round(errors, 3), "p95_ms": round(p95)}
        return stats

    def _resources(self, fault: Fault, figures: dict[str, Any]) -> dict[str, dict[str, float]]:
        rng = self.rng
        out = {}
        for service in fault.profile.memory:
            if rng.random() < 0.7:
                out[service] = {"memory_pct_of_limit": rng.randint(82, 99), "restarts": rng.randint(0, 4)}
        for service in fault.profile.cpu:
            if rng.random() < 0.7:
                out[service] = {"cpu_cores": float(figures["n"]) + round(rng.uniform(0.2, 0.8), 1)}
        return out

    def _telemetry(self, fault: Fault, incident: dict[str, Any], figures: dict[str, Any],
                   logs: list[tuple[str, str, str]], bank: str, sparse: bool) -> dict[str, Any]:
        rng = self.rng
        stats = self._stats(fault, figures, sparse)
        resources_ = self._resources(fault, figures)
        noise_logs = [entry for entry in rng.sample(HEALTHY_LOGS, k=rng.randint(0, 2))
                      if entry[0] not in fault.affected]
        all_logs = logs + noise_logs
        rng.shuffle(all_logs)
        minutes = incident["minutes"]
        layout = bank if bank == SHIFT_BANK or rng.random() < OWN_LAYOUT else rng.choice(LAYOUTS)
        if layout in ("notes", "records", "prose"):
            return getattr(self, f"_{layout}")(stats, resources_, all_logs, minutes, incident)
        if layout == "a":
            context: dict[str, Any] = {
                "environment": incident["environment"], "window_minutes": minutes,
                "trace_summary": {s: {"spans": v["requests"], "error_ratio": v["error_ratio"], "p95_ms": v["p95_ms"]}
                                  for s, v in stats.items()},
                "log_lines": rng.randint(200, 9000),
                "alert": rng.choice(("error-rate SLO burn", "latency SLO burn", "on-call page", "customer report")),
            }
            if all_logs:
                context["logs"] = [{"service": s, "severity": sev, "body": body} for s, sev, body in all_logs]
            if resources_:
                context["resources"] = resources_
            return context
        if layout == "b":
            context = {
                "window": f"{minutes}m", "env": incident["environment"][:4],
                "operations": [{"service": s, "operation": SPANS.get(s, "request"), "requests": v["requests"],
                                "errors_pct": round(100 * v["error_ratio"], 1),
                                "latency_p95_s": round(v["p95_ms"] / 1000, 3)} for s, v in stats.items()],
            }
            if all_logs:
                context["recent_logs"] = [f"{sev} {s}: {body}" for s, sev, body in all_logs]
            if resources_:
                context["saturation"] = {s: ", ".join(f"{k}={v}" for k, v in r.items()) for s, r in resources_.items()}
            return context
        if layout == "c":
            context = {
                "otel_traces": [{"ServiceName": s, "SpanName": SPANS.get(s, "request"), "count": v["requests"],
                                 "error_count": round(v["requests"] * v["error_ratio"]),
                                 "p95_duration_ns": int(v["p95_ms"] * 1_000_000)} for s, v in stats.items()],
                "window_s": minutes * 60,
            }
            if all_logs:
                context["otel_logs"] = [{"ServiceName": s, "SeverityText": sev, "Body": body}
                                        for s, sev, body in all_logs]
            if resources_:
                context["otel_metrics"] = [{"ServiceName": s, "MetricName": k, "Value": v}
                                           for s, r in resources_.items() for k, v in r.items()]
            return context
        # bank d (the phrasing shift): a hand-kept incident sheet
        context = {
            "notes": rng.choice(("numbers pulled from grafana for the incident window",
                                 "copied from the dashboards during the call", "rough numbers from tracing")),
            "per_service": [[s, f"{100 * v['error_ratio']:.0f}% errors", f"p95 {v['p95_ms'] / 1000:.1f}s",
                             f"{v['requests'] / 1000:.1f}k req"] for s, v in stats.items()],
            "duration": f"about {minutes} minutes",
        }
        if all_logs:
            context["log_snippets"] = [f"{s} ({sev.lower()}): {body}" for s, sev, body in all_logs]
        if resources_:
            context["resource_notes"] = [f"{s}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.items())
                                         for s, r in resources_.items()]
        return context


    # Layouts no bank owns, as people paste telemetry into a ticket: varied keys, units and nesting.
    def _alias(self, service: str) -> str:
        rng = self.rng
        camel = "".join(part.capitalize() for part in service.split("-"))
        return rng.choice((service, service, service.replace("-", ""), camel + "Service", f"{service} svc"))

    def _notes(self, stats, resources_, logs, minutes, incident) -> dict[str, Any]:
        """A dashboard dump: spans by service, log lines, a few metrics."""
        rng = self.rng
        span_key, log_key, metric_key = (rng.choice(("traces", "spans", "tracing")),
                                         rng.choice(("logs", "log_lines", "errors_seen")),
                                         rng.choice(("metrics", "resources", "infra")))
        context: dict[str, Any] = {span_key: {
            f"{self._alias(s)}.{SPANS.get(s, 'request').rsplit('/', 1)[-1]}" if rng.random() < 0.5 else self._alias(s):
                {"error_pct": round(100 * v["error_ratio"]), "p95_ms": v["p95_ms"]} for s, v in stats.items()}}
        if logs:
            context[log_key] = [body for _s, _sev, body in logs]
        if resources_:
            context[metric_key] = {f"{s}_{k}": v for s, r in resources_.items() for k, v in r.items()}
        if rng.random() < 0.5:
            context["window"] = f"{minutes} min"
        return context

    def _records(self, stats, resources_, logs, minutes, incident) -> dict[str, Any]:
        """One record per service, mixed units."""
        rng = self.rng
        seconds = rng.random() < 0.5
        rows = []
        for s, v in stats.items():
            row = {"name": self._alias(s), "errors": f"{100 * v['error_ratio']:.1f}%",
                   "latency_p95": f"{v['p95_ms'] / 1000:.2f}s" if seconds else f"{v['p95_ms']} ms",
                   "rps": round(v["requests"] / (60 * minutes), 1)}
            if s in resources_:
                row.update({k.replace("_", " "): value for k, value in resources_[s].items()})
            rows.append(row)
        context: dict[str, Any] = {rng.choice(("services", "components", "per_service")): rows}
        if logs:
            context[rng.choice(("recent_errors", "log_excerpt", "errors"))] = [
                f"{self._alias(s)}: {body}" for s, _sev, body in logs]
        return context

    def _prose(self, stats, resources_, logs, minutes, incident) -> dict[str, Any]:
        """Free text someone typed while looking at the dashboards."""
        rng = self.rng
        parts = [f"{self._alias(s)} {100 * v['error_ratio']:.0f}% errors, p95 {v['p95_ms']} ms"
                 for s, v in stats.items()]
        parts += [f"{self._alias(s)} " + ", ".join(f"{k.replace('_', ' ')} {value}" for k, value in r.items())
                  for s, r in resources_.items()]
        context: dict[str, Any] = {rng.choice(("summary", "observations", "what_we_see")): "; ".join(parts)}
        if logs:
            context[rng.choice(("log_lines", "logs", "sample_errors"))] = " | ".join(body for _s, _sev, body in logs)
        return context


def generate_sessions(size: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`size` sessions as JSON-form dicts, identical for the same seed."""
    yield from SessionGenerator(seed).sessions(size)


__all__ = ["SHIFT_BANK", "SessionGenerator", "call_graph", "demo_facts", "generate_sessions", "topology_for"]
