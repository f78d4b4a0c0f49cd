"""The `classtrace simulate` subcommand."""
