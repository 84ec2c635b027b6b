"""Adapters to other frameworks' objects (torch); imported only where those objects appear."""
