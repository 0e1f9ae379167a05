"""Measurements a worker makes of itself: compute throughput and memory."""
