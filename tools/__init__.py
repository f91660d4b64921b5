"""Command lines of dramakit: python -m tools.<name> --help."""
