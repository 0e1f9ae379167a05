"""The edge-worker process: control link to the coordinator, shard store, plan execution."""
