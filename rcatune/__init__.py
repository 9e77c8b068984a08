"""rcatune: turn incident-diagnosis sessions into fine-tuned root-cause models."""

__version__ = "0.1.0"
