"""LLM providers: the base class plugins implement, and the registry that picks one per message."""
