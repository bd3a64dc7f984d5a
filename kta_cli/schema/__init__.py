"""The config schema: typed dataclasses registered in Hydra's ConfigStore; YAMLs are presets."""
