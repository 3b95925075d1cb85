"""Corpus search: the index of nodes and passages, keyword + vector search fused with RRF."""
