"""The HTTP API (FastAPI routers) and its dependencies."""
