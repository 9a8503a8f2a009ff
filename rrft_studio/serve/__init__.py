"""A trained model at work: chat in the terminal (terminal.py), an OpenAI-compatible API (server.py, chat_api.py),
both over worker processes (inference.py); export as a Hugging Face folder or GGUF with a model card (export.py,
card.py)."""
