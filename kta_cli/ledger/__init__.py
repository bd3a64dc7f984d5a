"""Results ledger: run folders read, grouped over seeds, aggregated; the lineage of a run."""
