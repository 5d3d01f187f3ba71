"""Reproduction scripts for the papers (one module per method)."""
