"""The `engine` command line (typer)."""
