"""Lines: helpline services with their own languages, rules and texts."""
