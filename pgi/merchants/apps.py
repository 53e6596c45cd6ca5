from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "pgi.merchants"
    label = "merchants"
