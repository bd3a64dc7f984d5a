"""Fine-tuning strategies: which weights a run starts from, what trains, and at what rate."""
