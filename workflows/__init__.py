"""Orchestration only: one module per process (see registry.py)."""
