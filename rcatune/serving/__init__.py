"""The model server: an OpenAI-compatible API over the inference layer."""
