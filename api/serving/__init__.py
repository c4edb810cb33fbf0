"""Everything that runs under uWSGI: app factory, routes, validation, model swap, drain and the WSGI entry point."""
