"""After a run: alerts (e-mail, webhook) and cache invalidation (Redis)."""
