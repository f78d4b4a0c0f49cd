"""The `classtrace gateway` and `classtrace devices` subcommands, one module each."""
