"""Settings of the example project. The SignalWire ones come from the environment."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "chatsite.urls"
INSTALLED_APPS: list[str] = []
# An API for a browser app of your own: keep CsrfViewMiddleware and send the CSRF token from
# the page in a real project; the example keeps the list short.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
WSGI_APPLICATION = "chatsite.wsgi.application"

SIGNALWIRE = {
    "SPACE_URL": os.environ.get("SIGNALWIRE_SPACE_URL", ""),
    "PROJECT_ID": os.environ.get("SIGNALWIRE_PROJECT_ID", ""),
    "API_TOKEN": os.environ.get("SIGNALWIRE_API_TOKEN", ""),
    "BOT": os.environ.get("SIGNALWIRE_BOT", "bot@example.com"),
    # Where the chat page loads the official browser client from: a URL, or the path of
    # the npm package's dist/index.umd.js (served at /chat/signalwire-client.js).
    "CLIENT_JS": os.environ.get("SIGNALWIRE_CLIENT_JS", ""),
    # To point at the emulator; empty: derived from the token.
    "REST_URL": os.environ.get("SIGNALWIRE_REST_URL", ""),
    "RELAY_URL": os.environ.get("SIGNALWIRE_RELAY_URL", ""),
}
