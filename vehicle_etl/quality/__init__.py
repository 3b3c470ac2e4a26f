"""Stage 3, the quality gate (gate 1: key checks of the loaded tables; gate 2: the full gate)."""
