"""Generated protobuf bindings of proto/classtrace/v1 (regenerate with ``make proto``)."""
