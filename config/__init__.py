"""Typed settings, the model catalogue and the user-facing texts."""
