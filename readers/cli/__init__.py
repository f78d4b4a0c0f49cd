"""The `classtrace dashboard`, `viewers` and `report` subcommands, one module each."""
