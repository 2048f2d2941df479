"""Shared test support: waiting helpers, database fixtures, factories."""
