"""One module per command; each exposes run(cfg) -> dict of final metrics."""
