"""Self-supervised pretraining: SimCLR's views, task, kNN monitor and linear evaluation."""
