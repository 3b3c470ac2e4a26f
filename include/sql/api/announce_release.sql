-- The swap's in-transaction hook: tell `vehicle-etl serve` that the live release changed.
-- pg_notify inside the swap transaction is delivered at its commit (never if it rolls back).
SELECT pg_notify(%(channel)s, %(payload)s)
