"""`metrics-adapter explain`: value, target, activity and replicas, and why."""
