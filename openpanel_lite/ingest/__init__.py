"""Ingest: the /track wire protocol and the enrichment steps that turn a request into an event."""
