"""Business logic, free of HTTP: blueprints, WebSocket handlers and tasks are thin adapters."""
