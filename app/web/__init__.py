"""Browser-facing hardening: allowed origins and security headers."""
