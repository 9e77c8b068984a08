"""rcatune benchmarks (make bench): see bench/NOTES.md."""
