"""Vector indexes that fit the store: which kind for its size, tuned to a target recall, built and upgraded in the background."""
