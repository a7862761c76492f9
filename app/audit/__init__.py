"""The audit log: an append-only record of staff actions, without content."""
