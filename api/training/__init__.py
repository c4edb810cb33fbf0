"""Everything that makes a model version: CLI, reading interactions, evaluation and synthetic data."""
