"""Real-time accompanying metrics: the Faust worker and the pure metric functions it calls."""
