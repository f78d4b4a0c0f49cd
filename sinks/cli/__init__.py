"""The `classtrace sink` subcommand."""
