"""A/B tests between two served versions. `stats`: effects with intervals, always-valid (peeking-safe)
confidence sequences, the sample-ratio-mismatch check, power and the units still needed, corrections."""
