"""Chats: the protocol, the transcript, the chat service and the WebSocket adapters."""
