"""Client-secret rotation: a pure planner and the executor that applies its actions."""
