"""Ingestion: sources → prepare (read, extract, validate images) → chunk → embed → write."""
