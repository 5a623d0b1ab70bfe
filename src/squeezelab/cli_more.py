"""Sub-commands beyond info / train / evaluate (registered on import)."""
