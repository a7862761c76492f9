"""Small tools around Lykta (the terminal client)."""
