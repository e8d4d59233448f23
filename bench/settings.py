"""Settings of B4's server: the project's own, with the plain views beside the API (bench/urls.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
