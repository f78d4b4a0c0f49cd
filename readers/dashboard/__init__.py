"""The live class-inspection dashboard: a reader of classtrace.metrics.v1 for browsers (docs/DESIGN.md §5)."""
