"""The staff console: a static web app served by Lykta itself (no build step, no CDN)."""
