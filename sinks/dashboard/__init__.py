"""The live class-inspection dashboard: a sink of classtrace.metrics.v1 to browsers (DESIGN §5)."""
