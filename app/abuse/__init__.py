"""Abuse control without identity: keyed, rotating hashes of client addresses."""
