"""`python -m api.training`: train a model and publish it as a new version."""

from api.training.cli import main

main()
