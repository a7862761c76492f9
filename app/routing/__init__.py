"""Routing: which counsellor is offered which queued chat, and the visitor's wait estimate."""
