"""The `classtrace loadtest` subcommand."""
