"""The one prompt renderer every format and the evaluation use.

`render` gives the instruction / input / output form of the original design; `to_messages` the
chat form (system, user, assistant). `parse_answer` reads an answer in the output form back into
its parts, so generated answers can be scored field by field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from rcatune.schema import TrainingExample

DEFAULT_SYSTEM_PROMPT = (
    "You are an SRE assistant for a microservice system instrumented with OpenTelemetry. "
    "Given the symptoms and telemetry of an incident, name the root cause (the faulty component and the "
    "mechanism), a ClickHouse SQL query over the OpenTelemetry tables to confirm it, the critical paths "
    "affected and the remediation steps."
)

INSTRUCTION_TEMPLATE = """Analyze the following observability data and identify the root cause of the issue.

Symptoms: {symptoms}
Affected Services: {services}
Time Range: {start} to {end}

Provide:
1. Root cause analysis
2. Diagnostic query to investigate further
3. Critical service paths affected
4. Recommended remediation steps"""


@dataclass(frozen=True)
class Prompt:
    instruction: str
    input: str
    output: str
    system: str = DEFAULT_SYSTEM_PROMPT

    def user_message(self) -> str:
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction


@dataclass
class Answer:
    """The parts of an answer in the output form; missing parts are empty."""

    root_cause: str = ""
    diagnostic_query: str = ""
    critical_paths: list[list[str]] = field(default_factory=list)
    remediation_steps: list[str] = field(default_factory=list)


def render_input(example: TrainingExample) -> str:
    return json.dumps(
        {
            "telemetry_summary": example.telemetry_context,
            "service_topology": example.service_topology,
            "error_signatures": example.error_signatures,
        },
        ensure_ascii=False,
    )  # one line: the indentation of a pretty-printed dump costs about a fifth of the prompt's tokens


def render_output(example: TrainingExample) -> str:
    paths = "\n".join(f"- {' -> '.join(path)}" for path in example.critical_paths) or "- none identified"
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(example.remediation_steps, start=1)) or "1. none"
    return (
        f"Root Cause: {example.root_cause}\n\n"
        f"Diagnostic Query:\n```sql\n{example.diagnostic_query}\n```\n\n"
        f"Critical Paths:\n{paths}\n\n"
        f"Remediation Steps:\n{steps}"
    )


def render(example: TrainingExample, system: str = DEFAULT_SYSTEM_PROMPT) -> Prompt:
    start, end = example.time_range
    instruction = INSTRUCTION_TEMPLATE.format(
        symptoms="; ".join(example.symptoms),
        services=", ".join(example.affected_services),
        start=start.isoformat(),
        end=end.isoformat(),
    )
    return Prompt(instruction=instruction, input=render_input(example), output=render_output(example), system=system)


def to_messages(prompt: Prompt, with_answer: bool = True) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user_message()}]
    if with_answer:
        messages.append({"role": "assistant", "content": prompt.output})
    return messages


_SECTION = re.compile(r"^(Root Cause|Diagnostic Query|Critical Paths|Remediation Steps):", re.MULTILINE)


def parse_answer(text: str) -> Answer:
    """Split an answer in the output form into its parts (tolerant of missing sections)."""
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections.setdefault(match.group(1), text[match.end():end].strip())
    query = sections.get("Diagnostic Query", "")
    fenced = re.search(r"```(?:sql)?\s*\n?(.*?)```", query, re.DOTALL)
    query = (fenced.group(1) if fenced else query).strip()
    paths = [
        [part.strip() for part in line.lstrip("- ").split("->") if part.strip()]
        for line in sections.get("Critical Paths", "").splitlines()
        if line.strip().startswith("-") and "none identified" not in line
    ]
    steps = [
        re.sub(r"^\d+\.\s*", "", line.strip())
        for line in sections.get("Remediation Steps", "").splitlines()
        if re.match(r"^\s*\d+\.", line) and line.strip() != "1. none"
    ]
    return Answer(sections.get("Root Cause", ""), query, paths, steps)


def fingerprint(example: TrainingExample) -> str:
    """A hash of what the model sees of a session (the rendered user turn): the same session under another id
    has the same fingerprint."""
    import hashlib

    return hashlib.sha256(render(example).user_message().encode("utf-8")).hexdigest()[:24]
