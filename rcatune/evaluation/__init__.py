"""Base vs tuned on held-out incidents: generate, score, report, gate."""
