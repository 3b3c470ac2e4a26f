"""Stage 4, the release: the swap (a version switch by data), run history, id history, the diff."""
