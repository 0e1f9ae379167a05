"""The household: its areas and devices, their state (SQLite), timers, and the actions that
change them; optionally mirrored to a Home Assistant server."""
