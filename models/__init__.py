"""tfbin.models."""
