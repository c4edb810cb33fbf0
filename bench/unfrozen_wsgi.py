"""The served app with the master's gc.freeze() undone, for the stall sources' comparison (bench/stall_sources.py).

api/serving/wsgi.py freezes every object that exists once the app and the model are loaded, so that the workers'
collections never walk them. uWSGI loads this module in place of the served one (`--module`), in the master before
it forks: the workers then start with those objects back in the collector's oldest generation, as before the freeze.
"""

import gc

from api.serving.wsgi import application

gc.unfreeze()

__all__ = ["application"]
