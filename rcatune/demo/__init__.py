"""The OpenTelemetry Demo: facts, fault scenarios and the sample-session generator."""
