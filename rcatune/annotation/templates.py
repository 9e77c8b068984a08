"""The two annotation views, the tasks they show, and client-side checks of what annotators send back.

Label Studio accepts any annotation through its API (an unknown choice, a rating of 99, a missing
required answer all return 201), so every exported result is checked here against the labeling
config before it may change a training example.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from rcatune.config.annotation import REVIEW_TEMPLATES
from rcatune.schema import TrainingExample

TEMPLATES = REVIEW_TEMPLATES  # one file per name in templates/
KEY_FIELD = "rcatune_id"  # task data: the example's id, the import's idempotency key
HASH_FIELD = "rcatune_hash"  # task data: the example's content when pushed (a changed example is not merged)
CONTROL_TAGS = {"Choices": "choices", "TextArea": "textarea", "Rating": "rating"}
TEXT_LIMIT = 4_000  # characters of context shown per field


def label_config(template: str) -> str:
    """The labeling config XML of one template."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown annotation template {template!r}; choose from {list(TEMPLATES)}")
    return resources.files("rcatune.annotation").joinpath(f"templates/{template}.xml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Control:
    """One control tag of a labeling config: what an annotation result for it may hold."""

    name: str
    kind: str  # choices | textarea | rating
    to_name: str
    required: bool = False
    multiple: bool = False
    options: tuple[str, ...] = ()
    max_rating: int = 5


@dataclass
class LabelSpec:
    controls: dict[str, Control] = field(default_factory=dict)
    objects: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, config: str) -> "LabelSpec":
        spec = cls()
        for element in ET.fromstring(config).iter():
            name = element.get("name")
            if element.tag in CONTROL_TAGS:
                options = tuple(c.get("value", "") for c in element.iter("Choice"))
                spec.controls[name] = Control(
                    name=name, kind=CONTROL_TAGS[element.tag], to_name=element.get("toName", ""),
                    required=element.get("required", "false").lower() == "true",
                    multiple=element.get("choice", "single") == "multiple", options=options,
                    max_rating=int(element.get("maxRating", "5")))
            elif name and element.tag == "Text":
                spec.objects.add(name)
                value = element.get("value", "")
                spec.variables.update(part[1:].split()[0].rstrip(":,.") for part in value.split()
                                      if part.startswith("$"))
        return spec

    def check(self, result: Any) -> list[str]:
        """Every way an annotation's result breaks this config; empty when it fits."""
        if not isinstance(result, list):
            return [f"result is {type(result).__name__}, not a list of regions"]
        problems: list[str] = []
        seen: set[str] = set()
        for index, item in enumerate(result):
            where = f"result[{index}]"
            if not isinstance(item, dict):
                problems.append(f"{where} is not an object")
                continue
            name = item.get("from_name")
            control = self.controls.get(name)
            if control is None:
                problems.append(f"{where}: unknown control {name!r} (config has {sorted(self.controls)})")
                continue
            if name in seen:
                problems.append(f"{where}: {name} answered twice")
            seen.add(name)
            if item.get("to_name") != control.to_name:
                problems.append(f"{where}: {name} points at {item.get('to_name')!r}, not {control.to_name!r}")
            if item.get("type") != control.kind:
                problems.append(f"{where}: {name} has type {item.get('type')!r}, expected {control.kind!r}")
                continue
            problems.extend(f"{where}: {name} {p}" for p in _value_problems(control, item.get("value")))
        for control in self.controls.values():
            if control.required and control.name not in seen:
                problems.append(f"required {control.name} is missing")
        return problems


def _value_problems(control: Control, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["has no value object"]
    if control.kind == "choices":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            return ["needs a non-empty list of choices"]
        unknown = [c for c in choices if c not in control.options]
        if unknown:
            return [f"has unknown choice(s) {unknown}; allowed: {list(control.options)}"]
        if not control.multiple and len(choices) != 1:
            return [f"is single-choice but got {len(choices)} choices"]
        return []
    if control.kind == "rating":
        rating = value.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= control.max_rating:
            return [f"rating {rating!r} is not a whole number from 1 to {control.max_rating}"]
        return []
    text = value.get("text")
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        return ["needs a list of strings under 'text'"]
    return []


def answers(result: list[dict[str, Any]]) -> dict[str, Any]:
    """A checked result as {control: value}: choices -> list, rating -> int, textarea -> stripped text."""
    values: dict[str, Any] = {}
    for item in result:
        value = item["value"]
        if item["type"] == "choices":
            values[item["from_name"]] = list(value["choices"])
        elif item["type"] == "rating":
            values[item["from_name"]] = value["rating"]
        else:
            values[item["from_name"]] = "\n".join(value["text"]).strip()
    return values


# ------------------------------------------------------------------------------------------------- tasks
def example_hash(example: TrainingExample) -> str:
    text = json.dumps(example.to_json_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + " ..."


def _summary(context: dict[str, Any]) -> str:
    lines = []
    for key, value in context.items():
        shown = value if isinstance(value, (str, int, float)) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    return _clip("\n".join(lines))


def task_data(example: TrainingExample, template: str) -> dict[str, Any]:
    """The `$variables` one template shows, plus the idempotency key and content hash."""
    keys = {KEY_FIELD: example.id, HASH_FIELD: example_hash(example)}
    if template == "root_cause":
        topology = "\n".join(f"{svc} -> {', '.join(deps) or '(none)'}"
                             for svc, deps in example.service_topology.items())
        return {**keys,
                "telemetry_summary": _summary(example.telemetry_context),
                "service_topology": _clip(topology),
                "symptoms": _clip("\n".join(f"- {s}" for s in example.symptoms)),
                "ai_root_cause": example.root_cause,
                "confidence": f"{example.confidence_score:.2f}"}
    expected = [f"errors matching: {', '.join(example.error_signatures)}"] if example.error_signatures else []
    expected.append(f"rows for: {', '.join(example.affected_services)}")
    return {**keys,
            "query": example.diagnostic_query,
            "problem": _clip("\n".join(f"- {s}" for s in example.symptoms)),
            "expected_results": _clip("\n".join(expected))}


def prediction(example: TrainingExample, template: str, model_version: str) -> dict[str, Any]:
    """The AI's answer as a pre-annotation: experts edit the text rather than type it."""
    if template == "root_cause":
        result = [{"from_name": "correct_root_cause", "to_name": "ai_root_cause", "type": "textarea",
                   "value": {"text": [example.root_cause]}}]
    else:
        result = [{"from_name": "improved_query", "to_name": "generated_query", "type": "textarea",
                   "value": {"text": [example.diagnostic_query]}}]
    return {"model_version": model_version, "score": example.confidence_score, "result": result}


def task(example: TrainingExample, template: str, pre_annotate: bool, model_version: str) -> dict[str, Any]:
    item: dict[str, Any] = {"data": task_data(example, template)}
    if pre_annotate:
        item["predictions"] = [prediction(example, template, model_version)]
    return item


# Tags the annotation page renders (a subset of Label Studio's; enough for these views), and the
# only parents a <Label> may have. The server accepts configs that break either (measured on Label Studio 1.23.2:
# `<Code>` and a `<Label>` inside `<Rating>` pass its validation, and the annotation page then fails to load).
KNOWN_TAGS = {"View", "Header", "Text", "HyperText", "Paragraphs", "Table", "Style", "Collapse", "Panel", "Filter",
              "Choices", "Choice", "TextArea", "Rating", "Number", "DateTime", "Labels", "Label", "Taxonomy",
              "Ranker", "Pairwise", "Relations", "Relation", "Image"}
LABEL_PARENTS = {"Labels", "HyperTextLabels", "ParagraphLabels", "RectangleLabels", "PolygonLabels",
                 "KeyPointLabels", "EllipseLabels", "BrushLabels", "TimeSeriesLabels"}


def lint(config: str) -> list[str]:
    """Problems the annotation page would trip on although the server accepts the config."""
    problems = []
    root = ET.fromstring(config)
    for parent in root.iter():
        for child in parent:
            if child.tag not in KNOWN_TAGS:
                problems.append(f"<{child.tag}> is not a Label Studio tag")
            if child.tag == "Label" and parent.tag not in LABEL_PARENTS:
                problems.append(f"<Label value={child.get('value')!r}> may not sit inside <{parent.tag}>")
    return problems
