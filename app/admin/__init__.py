"""Deployment administration: what admins may see of how Lykta is configured."""
