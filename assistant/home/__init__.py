"""The home's persistent state: paired devices, API tokens, the request log."""
