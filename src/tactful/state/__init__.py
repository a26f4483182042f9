"""Remember: customer state, its trend, and the stores that keep it."""
