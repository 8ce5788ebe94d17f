"""Run recipes: ml_collections config files with ``get_config(arg=None)``."""
