"""kta sweep: Optuna studies over any kta command's config (space, study, trials, reports)."""
