"""Case report forms and everything that happens to their data (entry, checks, queries)."""
