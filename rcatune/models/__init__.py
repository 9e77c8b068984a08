"""Base models: the tiny built-in one, and loading any model through `from_pretrained`."""
