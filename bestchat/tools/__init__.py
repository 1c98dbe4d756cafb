"""Tools the model may call; ``base`` defines what a plugin registers."""
