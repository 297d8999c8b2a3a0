"""Ingestion spread over a Ray cluster: pages prepared as tasks, embedded by an actor pool, written by the one writer."""
