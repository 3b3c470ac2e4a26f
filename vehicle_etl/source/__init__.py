"""Stage 1, the source: find or restore a vPIC source, open it, stream its tables."""
