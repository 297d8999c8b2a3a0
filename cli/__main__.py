"""python -m cli: the same as the `engine` command."""

from cli.app import main

main()
