"""Watching the endpoint picker at work: `igwlab load` (bounded traffic) and `igwlab top` (pod metrics)."""
