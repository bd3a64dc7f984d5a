"""Reusing representations: few-shot episodes on frozen features (`kta fewshot`) and pictures of
the feature space (`kta embed`). Library code with typed arguments; commands/ reads the config."""
