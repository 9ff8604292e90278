"""WSGI entry of a sandbox server (`manage.py run_sandbox <system>` execs gunicorn on it)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandboxes.settings")
application = get_wsgi_application()
