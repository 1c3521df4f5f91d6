"""Fakes of external services for the tests (no network: they mirror documented behaviour)."""
