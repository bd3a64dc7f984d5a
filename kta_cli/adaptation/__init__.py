"""Domain adaptation: test-time adaptation (AdaBN, TENT) and domain-adversarial training (DANN)."""
