"""Continual learning on kta's engine: scenarios (task sequences), methods (tasks), metrics."""
