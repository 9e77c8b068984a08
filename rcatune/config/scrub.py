"""`scrub=`: what is replaced in sessions before anyone or any model sees them (rcatune/scrub.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from rcatune.config._require import require


@dataclass
class ScrubConfig:
    enabled: bool = True  # scrub=none: the data is used as it is, and the run summary says so
    # The pseudonymisation key: $RCATUNE_SCRUB_KEY, else this file, else a key made once for the state
    # folder (<state>/secrets/scrub.key). Never in config.
    key_file: Optional[str] = None
    allow: List[str] = field(default_factory=list)  # exact values that always survive (service names do anyway)
    allow_patterns: List[str] = field(default_factory=list)  # regexes a whole value must match to survive
    deny: List[str] = field(default_factory=list)  # exact strings always replaced (a customer's name, a host)
    detect_secrets: bool = True  # also run detect-secrets' vendor-token plugins after the project's rules

    def __post_init__(self) -> None:
        for pattern in self.allow_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                require(False, "scrub.allow_patterns", f"{pattern!r} is not a regular expression: {error}")
        require(all(value.strip() for value in self.deny), "scrub.deny", "holds an empty string")


SCHEMAS = {"base": ScrubConfig}
