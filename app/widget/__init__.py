"""The visitor widget: the embed loader, the chat page and its catalogues (files in widget/)."""
