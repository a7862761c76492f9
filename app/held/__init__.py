"""Held rows: a chat's durable rows, written in one shuffled batch after their hour ends."""
