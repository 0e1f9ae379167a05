"""Galaxy Home edge worker: the Transformer engine, the communicators and the worker process."""
