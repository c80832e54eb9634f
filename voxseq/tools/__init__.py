"""Command-line helpers for users and benchmarks (large sample sheets, ...)."""
