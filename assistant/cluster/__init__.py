"""Worker sessions, shard distribution and dispatch (the coordinator side of the cluster)."""
