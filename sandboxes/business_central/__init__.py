"""Local Business Central (API v2.0) sandbox: `manage.py run_sandbox business_central`."""
