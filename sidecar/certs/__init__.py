"""The management certificate the daemon authenticates to Graph with: planner and renewal."""
