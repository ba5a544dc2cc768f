"""Benchmarks behind ``netfast bench``: measurement code, kept apart from the CLI that prints it."""
