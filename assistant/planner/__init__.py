"""Device profiles -> parallel plan: a cost model and the planner (pure functions)."""
