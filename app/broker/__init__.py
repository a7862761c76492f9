"""Everything ephemeral: queues, chat state, transcripts, presence, deadlines and events.

One interface (`Broker`), one in-process implementation for the embedded default and one on
Redis for scale-out. Callers never know which one they have.
"""
