"""Context strategies that fit long conversations into a model's window; ``base`` defines what a
plugin registers."""
