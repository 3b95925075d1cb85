"""Cross-feed digests: new episodes, story clusters and a time-budgeted topic list."""
