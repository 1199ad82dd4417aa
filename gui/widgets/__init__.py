"""Reusable widgets: live trace plots, the protocol editor, tables and badges."""
