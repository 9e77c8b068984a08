"""Which fault a root cause names: label inference against a fault catalog.

Real exports carry no `scenario` label, so root-cause accuracy needs the reference fault inferred from
the reference root cause (and the predicted one from the model's answer). A catalog lists a system's
faults, each with a name, a description, its services and its tell-tale words; the built-in one is the
OpenTelemetry Demo's (`rcatune.demo.faults`), and `evaluation.fault_catalog=FILE` (YAML or JSON, the
same fields) brings a team's own. A text is scored against every fault by its explicit id, its
keywords, the fault's service, and the cosine similarity of MiniLM embeddings; the best fault wins when
it is clearly best, `none` when the text says the incident matches no known fault, and nothing
(unlabelled) when no fault is close enough: better unscored than scored against a wrong label.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from rcatune.errors import ConfigError

NONE = "none"  # an incident outside the catalog (the right answer asks for investigation)
_STATED_UNKNOWN = re.compile(r"\b(unknown|needs? investigation|no known fault|not a known fault|no catalogued fault|"
                             r"doesn't look like any known fault|does not match a known fault)\b")


class CatalogFault(BaseModel):
    id: str
    name: str
    description: str
    services: list[str] = Field(default_factory=list)  # the component at fault first
    keywords: list[str] = Field(default_factory=list)  # distinctive words and phrases, lower case


class Label(BaseModel):
    """The fault a text names (`label` None: none close enough), with how sure and how it was obtained."""

    label: Optional[str]
    score: float
    runner_up: Optional[str] = None
    margin: float = 0.0
    how: str  # given | re-inferred after review | inferred | stated unknown | unlabelled


class FaultCatalog(BaseModel):
    faults: list[CatalogFault]
    min_score: float = 0.35  # below: unlabelled
    min_margin: float = 0.1  # a runner-up this close: unlabelled (ambiguous)

    @classmethod
    def builtin(cls) -> "FaultCatalog":
        """The OpenTelemetry Demo's faults."""
        from rcatune.demo.faults import FAULTS

        return cls(faults=[CatalogFault(id=f.id, name=f.name, description=f.description,
                                        services=[f.service, *[s for s in f.affected if s != f.service]],
                                        keywords=list(f.keywords)) for f in FAULTS])

    @classmethod
    def load(cls, path: Optional[str]) -> "FaultCatalog":
        """`path` (YAML or JSON: `faults: [{id, name, description, services, keywords}]`), or the built-in one."""
        if path is None:
            return cls.builtin()
        import yaml

        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"evaluation.fault_catalog: no such file {path!r}")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
            return cls.model_validate(data)
        except Exception as error:  # yaml and pydantic raise several kinds
            raise ConfigError(f"evaluation.fault_catalog {path}: not a fault catalog ({str(error)[:300]}); "
                              "it needs `faults:` with id, name, description, services, keywords each") from None

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.faults]

    def infer(self, texts: list[str]) -> list[Label]:
        """The fault each text names."""
        if not texts:
            return []
        similarity = _similarities(tuple(texts), tuple(f"{f.name}. {f.description}" for f in self.faults))
        return [self._one(text, row) for text, row in zip(texts, similarity, strict=True)]

    def _one(self, text: str, similarity: list[float]) -> Label:
        lowered = text.lower()
        scores = []
        for fault, cosine in zip(self.faults, similarity, strict=True):
            named = bool(re.search(rf"(?<![a-z0-9]){re.escape(fault.id.lower())}(?![a-z0-9])", lowered))
            hits = sum(1 for word in fault.keywords if word in lowered)
            service = bool(fault.services) and re.search(
                rf"(?<![a-z0-9-]){re.escape(fault.services[0].lower())}(?![a-z0-9-])", lowered) is not None
            score = 0.6 * named + 0.12 * min(hits, 3) + 0.1 * service + 0.8 * max(cosine - 0.25, 0.0)
            scores.append((score, fault.id, named))
        scores.sort(reverse=True)
        (best, label, named), (second, runner_up, _) = scores[0], scores[1] if len(scores) > 1 else (0.0, None, 0)
        if _STATED_UNKNOWN.search(lowered) and not named:
            return Label(label=NONE, score=1.0, runner_up=label, margin=1.0, how="stated unknown")
        margin = best - second
        if named and margin > 0:
            return Label(label=label, score=round(best, 3), runner_up=runner_up, margin=round(margin, 3),
                         how="inferred")
        if best < self.min_score or margin < self.min_margin:
            return Label(label=None, score=round(best, 3), runner_up=label, margin=round(margin, 3), how="unlabelled")
        return Label(label=label, score=round(best, 3), runner_up=runner_up, margin=round(margin, 3), how="inferred")


@lru_cache(maxsize=4)
def _reference_embeddings(references: tuple[str, ...]):
    from rcatune.embeddings import embed

    return embed(list(references))


def _similarities(texts: tuple[str, ...], references: tuple[str, ...]) -> list[list[float]]:
    """Cosine similarity of each text to each reference (MiniLM sentence embeddings)."""
    from rcatune.embeddings import embed

    return (embed(list(texts)) @ _reference_embeddings(references).T).tolist()


def reference_labels(examples, catalog: FaultCatalog) -> list[Label]:
    """`reference_label` of each example, the unlabelled ones inferred in one batch."""
    unlabelled = [i for i, e in enumerate(examples) if not e.scenario]
    inferred = dict(zip(unlabelled, catalog.infer([examples[i].root_cause for i in unlabelled]), strict=True))
    return [reference_label(e, catalog, inferred.get(i)) for i, e in enumerate(examples)]


def reference_label(example, catalog: FaultCatalog, inferred: Optional[Label] = None) -> Label:
    """How the reference fault of an example is known: its `scenario` label (re-inferred after a review
    that corrected the root cause), or inferred from its root cause."""
    corrected = bool(example.corrections and "scenario" in example.corrections)
    if example.scenario:
        return Label(label=example.scenario, score=1.0, how="re-inferred after review" if corrected else "given")
    return inferred or catalog.infer([example.root_cause])[0]
