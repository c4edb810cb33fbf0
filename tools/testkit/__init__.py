"""Helpers shared by tests, benchmarks and the deploy tooling: ports, process groups, a real uWSGI, steady load."""
