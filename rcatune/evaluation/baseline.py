"""A bag-of-words baseline: what the training data teaches a linear classifier, as a yardstick for the model.

TF-IDF over the words of the prompt the model sees (instruction and input, never the answer) and a
logistic regression to the fault label, fitted on the same training split the model trained on. It
names a fault and nothing else, so it is compared on root-cause accuracy only, paired with the tuned
model on the same incidents. A tuned model below it has not learned what its data could teach; one
above it reads more than which words occur.

The fine-tuning pipeline saves the fitted baseline beside the model (`rcatune_words_baseline.json`:
its vocabulary, the words and word pairs of at least two training prompts after scrubbing, with its
weights and labels; not the prompts themselves), so `pipeline=evaluate` compares a registered
version with the baseline of its own training data, on any data.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from rcatune.artifacts import PRIMARY_METRIC, ModelScores
from rcatune.errors import DataError
from rcatune.evaluation.catalog import FaultCatalog, reference_labels
from rcatune.prompts import render
from rcatune.schema import TrainingExample

NAME = "words baseline"
FILE = "rcatune_words_baseline.json"
MIN_PER_LABEL = 2  # a label seen fewer times in training is left out of the fit
NGRAMS = (1, 2)
DIGITS = 5  # weights are stored rounded: the predictions of the stored baseline are the fitted one's (tested)


def prompt_text(example: TrainingExample, system_prompt: str) -> str:
    return render(example, system_prompt).user_message()


def _analyzer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=NGRAMS).build_analyzer()


class WordsBaseline:
    """TF-IDF (word 1- and 2-grams, lower case, sublinear tf, L2-normalised) + logistic regression."""

    def __init__(self, vocabulary: dict[str, int], idf: list[float], classes: list[str], coef: list[list[float]],
                 intercept: list[float], fitted_on: int) -> None:
        self.vocabulary, self.idf, self.classes = vocabulary, idf, classes
        self.coef, self.intercept, self.fitted_on = coef, intercept, fitted_on
        self._analyze = _analyzer()

    @classmethod
    def fit(cls, examples: list[TrainingExample], catalog: FaultCatalog,
            system_prompt: str) -> Optional["WordsBaseline"]:
        """None when the training examples carry fewer than two labels (nothing to tell apart)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        pairs = [(prompt_text(e, system_prompt), truth.label)
                 for e, truth in zip(examples, reference_labels(examples, catalog), strict=True)]
        counts = Counter(label for _, label in pairs if label is not None)
        kept = [(text, label) for text, label in pairs if label is not None and counts[label] >= MIN_PER_LABEL]
        if len({label for _, label in kept}) < 2:
            return None
        vectorizer = TfidfVectorizer(ngram_range=NGRAMS, sublinear_tf=True, min_df=2)
        features = vectorizer.fit_transform([text for text, _ in kept])
        model = LogisticRegression(max_iter=2000, C=10.0).fit(features, [label for _, label in kept])
        coef = [[round(float(w), DIGITS) for w in row] for row in model.coef_]
        return cls({term: int(i) for term, i in vectorizer.vocabulary_.items()},
                   [round(float(x), DIGITS) for x in vectorizer.idf_], [str(c) for c in model.classes_], coef,
                   [round(float(b), DIGITS) for b in model.intercept_], len(kept))

    def predict(self, examples: list[TrainingExample], system_prompt: str) -> list[str]:
        return [self._predict_text(prompt_text(e, system_prompt)) for e in examples]

    def _predict_text(self, text: str) -> str:
        counts = Counter(self.vocabulary[t] for t in self._analyze(text) if t in self.vocabulary)
        weights = {i: (1.0 + math.log(n)) * self.idf[i] for i, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        scores = [b + sum(row[i] * w for i, w in weights.items()) / norm
                  for row, b in zip(self.coef, self.intercept, strict=True)]
        if len(self.classes) == 2:  # a binary model has one row: positive means the second class
            return self.classes[1] if scores[0] > 0 else self.classes[0]
        return self.classes[max(range(len(scores)), key=scores.__getitem__)]

    def score(self, examples: list[TrainingExample], tuned: ModelScores, system_prompt: str) -> ModelScores:
        """Accuracy against the very reference labels the tuned model was scored against (its answer rows)."""
        references = {row["id"]: row for row in tuned.answers}
        rows = []
        for example, predicted in zip(examples, self.predict(examples, system_prompt), strict=True):
            reference = references[example.id]
            row = {"id": example.id, "reference_label": reference["reference_label"],
                   "reference_how": reference["reference_how"], "predicted_label": predicted}
            if "rca_correct" in reference:
                row["rca_correct"] = float(predicted == reference["reference_label"])
            rows.append(row)
        scored = [row["rca_correct"] for row in rows if "rca_correct" in row]
        metrics = {"label_coverage": len(scored) / len(rows) if rows else 0.0, "examples": float(len(rows)),
                   "fitted_on": float(self.fitted_on)}
        if scored:
            metrics[PRIMARY_METRIC] = statistics.fmean(scored)
        return ModelScores(name=NAME, metrics=metrics, answers=rows)

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / FILE
        payload: dict[str, Any] = {"kind": "tfidf-logistic-regression", "ngram_range": list(NGRAMS),
                                   "fitted_on": self.fitted_on, "classes": self.classes,
                                   "intercept": self.intercept, "idf": self.idf, "vocabulary": self.vocabulary,
                                   "coef": self.coef}
        path.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path | str) -> Optional["WordsBaseline"]:
        """The baseline saved beside a model, or None (a model trained before baselines were saved, or
        with `evaluation.words_baseline=false`)."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["vocabulary"], data["idf"], data["classes"], data["coef"], data["intercept"],
                       data["fitted_on"])
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path} is not a saved bag-of-words baseline ({type(error).__name__}: {error}); "
                            "delete it, or score without it: evaluation.words_baseline=false") from None
