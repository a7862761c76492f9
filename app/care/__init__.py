"""Care for the carers: debriefs after a hard chat (docs/risk.md)."""
