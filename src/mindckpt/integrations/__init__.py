"""Integrations with training frameworks (optional extras): :mod:`mindckpt.integrations.lightning`."""
