from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "pgi.web"
    label = "web"
    verbose_name = "Web pages"
