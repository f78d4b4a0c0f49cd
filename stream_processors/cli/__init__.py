"""The `classtrace worker` subcommand."""
