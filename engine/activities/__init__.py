"""Activities: rule evaluation (local), assignment and messaging. Each is safe to run twice."""
