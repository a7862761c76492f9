"""Anonymous statistics: one row per chat, hour buckets, no ids that link back."""
