"""Keeping a knowledge base over months: forget, backup and restore, export."""
