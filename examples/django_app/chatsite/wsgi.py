"""WSGI entry point: ``gunicorn --preload chatsite.wsgi`` (run from examples/django_app)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # for http_errors
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
