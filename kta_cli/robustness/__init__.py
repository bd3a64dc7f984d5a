"""Robustness: adversarial attacks (FGSM, PGD), noise, adversarial training."""
