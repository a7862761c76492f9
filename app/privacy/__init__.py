"""Privacy by design, made checkable: what Lykta could hand over about a time window."""
