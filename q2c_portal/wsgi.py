import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "q2c_portal.settings")
application = get_wsgi_application()

from q2c_portal.checks import refuse_to_start  # noqa: E402  (needs the settings loaded above)

refuse_to_start()  # no production web process on the simulators' public secrets
