"""What a model version is on disk: format, checksums, loader and ANN indexes. Imports neither serving nor training."""
