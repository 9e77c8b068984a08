"""Scrub secrets and personal data out of validated sessions before anything else sees them.

The scrubber walks each record's structure (telemetry context with its attributes, events and log
bodies; symptoms, signatures, query, remediation, corrections, notes) and replaces every value a
detector finds with a placeholder such as `EMAIL_3f2a91c0`: a keyed hash (HMAC-SHA256) of the value, so
the same value maps to the same placeholder across a session and a dataset, and placeholders are
bare identifiers that keep SQL parseable inside or outside a string literal.

Detectors, in order: the config's deny list; attribute keys that name a secret or a person
(`password`, `authorization`, `user.id`...); the project's rules (below: what offline libraries miss,
ending with a secret named in prose and one found by its shape and entropy wherever it stands);
detect-secrets' token plugins (cloud keys, tokens of known vendors, private keys). Allow lists keep
service names, span names and the demo's public identifiers. The report counts by type and field,
never the values.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from pydantic import BaseModel, Field

from rcatune.errors import ConfigError
from rcatune.schema import TrainingExample

log = logging.getLogger(__name__)

KEY_ENV = "RCATUNE_SCRUB_KEY"
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]*_[0-9a-f]{8}\b")

# Fields of a record that hold free text or telemetry; ids, times, topology and labels are structure.
SCRUBBED_FIELDS = ("telemetry_context", "symptoms", "error_signatures", "root_cause", "diagnostic_query",
                   "remediation_steps", "corrections", "expert_notes", "false_hypotheses", "query_issues")

# Attribute keys whose whole value is a secret, or identifies a person.
SECRET_KEY = re.compile(r"(?i)(^|[._-])(password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token|"
                        r"authorization|auth|cookie|set-cookie|credentials?|private[_-]?key|session[_-]?token)$")
PERSON_KEY = re.compile(r"(?i)(^|[._-])(user|enduser|customer|account|client|member)[._-]?(id|name|email)$|"
                        r"^(email|e-mail|phone|phone_number|user|username|login)$")
# ... but a bare `email` key holds an address only if its value has an `@`: the OpenTelemetry Demo has an
# `email` service, and `{"cpu": {"email": "71%"}}` is that service's figure, not a person (`user.email`,
# `customer_email` always name a person)
BARE_EMAIL_KEY = re.compile(r"(?i)^e-?mail$")


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _is_ipv4(text: str) -> bool:
    return all(0 <= int(part) <= 255 for part in text.split("."))


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    import math

    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _classes(text: str) -> list[str]:
    return ["u" if c.isupper() else "l" if c.islower() else "d" if c.isdigit() else "s" for c in text]


HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _is_random(text: str) -> bool:
    """A credential by its shape, wherever it stands: long, several character classes that change often, high
    entropy, and not the shapes telemetry is full of (hex trace/span ids and hashes, UUIDs, identifiers made of
    words). Measured on generated and hand-written sessions: no false positive (docs/scrubbing.md)."""
    core = text.rstrip("=")
    if HEX.fullmatch(core) or UUID.fullmatch(core):
        return False
    classes = _classes(core)
    letters_digits = [c for c in classes if c != "s"]
    kinds = set(letters_digits)
    changes = sum(a != b for a, b in zip(letters_digits, letters_digits[1:], strict=False)) / max(len(core) - 1, 1)
    if re.search(r"[a-z]{8}", core):
        return False  # a word-sized lowercase run: an identifier, a path or prose glued together
    if {"u", "l", "d"} <= kinds:
        words = sum(len(w) for w in re.findall(r"[A-Z]?[a-z]{3,}", core)) / len(core)
        return len(core) >= 20 and changes >= 0.3 and words < 0.55 and _entropy(core) >= 3.5
    if len(kinds) == 2 and "d" in kinds:  # one case and digits: longer, and without separators
        return len(core) >= 24 and "s" not in classes and changes >= 0.35 and _entropy(core) >= 3.8
    return False


def _looks_like_a_password(text: str) -> bool:
    """A letter and a digit, or a symbol inside a mixed-case word: "Hunter2", "S3cr3t!", "pA$$word" (not
    "expired", "error." or "rotation")."""
    core = text.rstrip(".,:;!?)]}")
    letters = [c for c in core if c.isalpha()]
    if not letters:
        return False
    mixed = any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    return any(c.isdigit() for c in core) or (mixed and any(not c.isalnum() for c in core))


@dataclass(frozen=True)
class Rule:
    """One project rule: a pattern whose `group` is the value to replace, optionally confirmed by `check`."""

    kind: str
    pattern: re.Pattern
    group: int | str = 0
    check: Optional[Callable[[str], bool]] = None


# Order matters: structured secrets (JWTs, URLs with credentials) before the pieces they contain.
RULES: tuple[Rule, ...] = (
    Rule("PRIVATE_KEY", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    Rule("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")),
    Rule("URL_CREDENTIALS", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://(?P<v>[^\s:/@'\"]+:[^\s@/'\"]+)@"), "v"),
    Rule("BEARER", re.compile(r"(?i)\b(?:bearer|basic|token)\s+(?P<v>[A-Za-z0-9._~+/=-]{12,})"), "v"),
    Rule("SECRET_PARAM", re.compile(
        r"(?i)(?:[?&;\s\"'{,]|^)(?:access_?token|api[_-]?key|apikey|auth|token|secret|client_secret|password|passwd"
        r"|pwd|sig|signature|x-api-key)[\"']?\s*[=:]\s*[\"']?(?P<v>[^\s&\"',;}]{4,})"), "v"),
    Rule("AWS_ACCESS_KEY", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    Rule("AWS_SECRET_KEY", re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,10}?(?P<v>[A-Za-z0-9/+]{40})\b"), "v"),
    Rule("API_TOKEN", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|hf_[A-Za-z0-9]{30,}"
                                 r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(?:live|test)_[A-Za-z0-9]{16,}"
                                 r"|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20})")),
    Rule("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    Rule("CARD", re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])"), check=_is_card),
    Rule("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")),
    Rule("SSN", re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")),
    Rule("PHONE", re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
                             r"(?![\w-])|(?<![\w])\+\d{10,14}(?![\w])")),
    Rule("IPV6", re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])")),
    Rule("IPV4", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"), check=_is_ipv4),
    Rule("USER_ID", re.compile(r"(?i)\b(?:user|customer|account|enduser)[._-]?(?:id|name)[\"']?\s*[=:]\s*[\"']?"
                               r"(?P<v>[A-Za-z0-9._@-]{3,})"), "v"),
    # A secret named in prose, with no = or : ("the password is Hunter2!x", "client secret 9f8e..."): the value
    # must look like a password (a letter and a digit, or a symbol in a mixed-case word), so "token expired",
    # "invalid token error." and "secret rotation" stay.
    Rule("SECRET", re.compile(r"(?i)\b(?:password|passwd|passphrase|secret|api[ _-]?key|access[ _-]?key|token|"
                              r"credentials?)\s+(?:is\s+|was\s+|of\s+)?[\"'`]?(?P<v>[^\s\"'`,;()]{6,})"), "v",
         check=_looks_like_a_password),
    # Last: a credential by its shape alone, wherever it stands in free text.
    Rule("SECRET", re.compile(r"(?<![A-Za-z0-9+/=_.-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])"),
         check=_is_random),
)

# Values that look like a rule's match but are not personal: loopback and unspecified addresses,
# version-like quads, the demo's public identifiers.
BUILTIN_ALLOW = frozenset({"127.0.0.1", "0.0.0.0", "255.255.255.255", "localhost", "::1"})


class ScrubReport(BaseModel):
    """What the scrubber replaced: counts by type and by field, never a value."""

    enabled: bool = True
    records: int = 0
    records_changed: int = 0
    replaced: int = 0
    by_type: dict[str, int] = Field(default_factory=dict)
    by_field: dict[str, int] = Field(default_factory=dict)
    by_detector: dict[str, int] = Field(default_factory=dict)
    key_source: Optional[str] = None  # env | file | state (a key made for this state folder)

    def lines(self) -> list[str]:
        if not self.enabled:
            return ["scrub: OFF (scrub=none): secrets and personal data in the data are used and exported as they are"]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_type.items())) or "nothing found"
        return [f"scrub: {self.replaced} values replaced in {self.records_changed} of {self.records} records ({kinds})"]


def load_key(key_file: Optional[str], state: Optional[Path]) -> tuple[bytes, str]:
    """The pseudonymisation key: $RCATUNE_SCRUB_KEY, else `scrub.key_file`, else one made once for this
    state folder (so placeholders stay the same from run to run). Never logged, never in config."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode(), "env"
    if key_file:
        path = Path(key_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"scrub.key_file={key_file} does not exist; create it (a random line) or set {KEY_ENV}")
        return path.read_text(encoding="utf-8").strip().encode(), "file"
    if state is None:
        from rcatune.state import state_dir

        state = state_dir()
    path = state / "secrets" / "scrub.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip().encode(), "state"


DETECT_SECRETS_PLUGINS = (
    "ArtifactoryDetector", "AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "IbmCloudIamDetector",
    "IbmCosHmacDetector", "JwtTokenDetector", "MailchimpDetector", "NpmDetector", "OpenAIDetector",
    "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector", "SlackDetector", "SoftlayerDetector",
    "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector")


@contextmanager
def detect_secrets_scanner() -> Iterator[Callable[[str], list[tuple[str, str]]]]:
    """detect-secrets' vendor-token plugins, configured once (its entropy and keyword plugins flag trace
    ids and ordinary words, so the project's rules cover those instead)."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    with transient_settings({"plugins_used": [{"name": name} for name in DETECT_SECRETS_PLUGINS],
                             "filters_used": []}):
        yield lambda text: [(found.type, found.secret_value) for found in scan_line(text) if found.secret_value]


@dataclass
class Scrubber:
    """Replace what the detectors find, consistently, in one dataset."""

    key: bytes
    allow: frozenset[str] = frozenset()
    allow_patterns: tuple[re.Pattern, ...] = ()
    deny: tuple[str, ...] = ()
    scan: Optional[Callable[[str], list[tuple[str, str]]]] = None  # detect-secrets, when in use
    by_type: Counter = field(default_factory=Counter)
    by_field: Counter = field(default_factory=Counter)
    by_detector: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._deny = re.compile("|".join(re.escape(v) for v in sorted(self.deny, key=len, reverse=True))) \
            if self.deny else None

    def placeholder(self, kind: str, value: str) -> str:
        digest = hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:8]
        return f"{kind}_{digest}"

    def _allowed(self, value: str, allow: frozenset[str]) -> bool:
        return (value in allow or value in BUILTIN_ALLOW or bool(PLACEHOLDER.fullmatch(value))
                or any(p.fullmatch(value) for p in self.allow_patterns))

    def _count(self, kind: str, where: str, detector: str) -> None:
        self.by_type[kind] += 1
        self.by_field[where] += 1
        self.by_detector[detector] += 1

    def text(self, text: str, where: str, allow: frozenset[str] = frozenset()) -> str:
        """Scrub one string; `where` is its field path (for the report)."""
        allow = allow | self.allow
        if self._deny is not None:
            def denied(match: re.Match) -> str:
                self._count("DENIED", where, "deny_list")
                return self.placeholder("DENIED", match.group(0))
            text = self._deny.sub(denied, text)
        for rule in RULES:
            text = self._apply(rule, text, where, allow)
        if self.scan is not None and any(c.isdigit() for c in text):
            for kind, value in self.scan(text):
                if len(value) >= 8 and value in text and not self._allowed(value, allow):
                    self._count("SECRET", where, "detect_secrets:" + kind)
                    text = text.replace(value, self.placeholder("SECRET", value))
        return text

    def _apply(self, rule: Rule, text: str, where: str, allow: frozenset[str]) -> str:
        def replace(match: re.Match) -> str:
            value = match.group(rule.group)
            if self._allowed(value, allow) or (rule.check is not None and not rule.check(value)):
                return match.group(0)
            self._count(rule.kind, where, "rule:" + rule.kind)
            start, end = match.start(rule.group) - match.start(0), match.end(rule.group) - match.start(0)
            whole = match.group(0)
            return whole[:start] + self.placeholder(rule.kind, value) + whole[end:]
        return rule.pattern.sub(replace, text)

    def value(self, value: Any, where: str, allow: frozenset[str], key: str = "") -> Any:
        """Scrub a JSON value; a dict key that names a secret or a person replaces its whole value."""
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}", allow, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[]", allow, key) for v in value]
        if isinstance(value, (str, int)) and not isinstance(value, bool) and key and key not in allow:
            text = str(value)
            if text and not self._allowed(text, allow | self.allow):
                if SECRET_KEY.search(key):
                    self._count("SECRET", where, "attribute_key")
                    return self.placeholder("SECRET", text)
                if PERSON_KEY.search(key) and ("@" in text or not BARE_EMAIL_KEY.match(key)):
                    self._count("USER_ID", where, "attribute_key")
                    return self.placeholder("USER_ID", text)
        if isinstance(value, str):
            return self.text(value, where, allow)
        return value

    def example(self, example: TrainingExample) -> TrainingExample:
        """One session, scrubbed; its service names (topology, affected services, paths) always survive."""
        record = example.model_dump(mode="json")
        allow = frozenset(example.affected_services) | frozenset(example.service_topology) | frozenset(
            s for targets in example.service_topology.values() for s in targets)
        for name in SCRUBBED_FIELDS:
            if record.get(name) is not None:
                record[name] = self.value(record[name], name, allow)
        return TrainingExample.model_validate(record)

    def report(self, records: int, changed: int, key_source: Optional[str]) -> ScrubReport:
        return ScrubReport(records=records, records_changed=changed, replaced=sum(self.by_type.values()),
                           by_type=dict(self.by_type), by_field=dict(self.by_field),
                           by_detector=dict(self.by_detector), key_source=key_source)


class ExampleScrub:
    """Scrub one example at a time with `config` (a `rcatune.config.scrub.ScrubConfig`), counting as it goes:
    handed to validation as its transform, each session is scrubbed as it is accepted, so no unscrubbed copy of
    a dataset is held beside the scrubbed one. Open it with `scrub_stream`."""

    def __init__(self, config, state: Optional[Path] = None) -> None:
        self.records, self.changed, self.scrubber, self.key_source = 0, 0, None, None
        if config.enabled:
            key, self.key_source = load_key(config.key_file, state)
            self.scrubber = Scrubber(key=key, allow=frozenset(config.allow),
                                     allow_patterns=tuple(re.compile(p) for p in config.allow_patterns),
                                     deny=tuple(config.deny))

    def __call__(self, example: TrainingExample) -> TrainingExample:
        self.records += 1
        if self.scrubber is None:
            return example
        scrubbed = self.scrubber.example(example)
        self.changed += scrubbed != example
        return scrubbed

    def report(self) -> ScrubReport:
        if self.scrubber is None:
            return ScrubReport(enabled=False, records=self.records)
        return self.scrubber.report(self.records, self.changed, self.key_source)


@contextmanager
def scrub_stream(config, state: Optional[Path] = None) -> Iterator[ExampleScrub]:
    """An `ExampleScrub` for `config`, with detect-secrets configured while it is open (when in use)."""
    scrub = ExampleScrub(config, state)
    with detect_secrets_scanner() if scrub.scrubber and config.detect_secrets else nullcontext() as scan:
        if scrub.scrubber is not None:
            scrub.scrubber.scan = scan
        yield scrub


def scrub_examples(examples: Iterable[TrainingExample], config, state: Optional[Path] = None,
                   ) -> tuple[list[TrainingExample], ScrubReport]:
    """Scrub every example with `config` (a `rcatune.config.scrub.ScrubConfig`)."""
    with scrub_stream(config, state) as scrub:
        out = [scrub(example) for example in examples]
    return out, scrub.report()
