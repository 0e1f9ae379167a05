"""Galaxy Home gateway: the command line today; the HTTP API, discovery and trust to come."""
