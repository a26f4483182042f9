"""Runtime: the pure pipeline and the engine that feeds it from a store."""
