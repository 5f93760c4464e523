"""Placeholder: registers nothing yet."""
