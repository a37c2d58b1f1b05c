"""The web face of the hub: API routes, pages and static files."""
