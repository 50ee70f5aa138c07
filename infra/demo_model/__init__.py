"""The demo chat model: a tiny Llama trained from scratch on arithmetic with exact answers."""
