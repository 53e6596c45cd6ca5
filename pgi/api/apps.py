from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "pgi.api"
    label = "api"
    verbose_name = "API plumbing"
