"""Who a service call acts for: an API key's merchant, or a platform key acting for any merchant.

Layer-neutral, so the REST API, the Kafka consumer and Celery tasks hand services the same thing.
"""

from dataclasses import dataclass

from .models import ApiKey, Merchant


@dataclass(frozen=True)
class Principal:
    """Who is calling. For API requests it is request.user (and request.auth is the ApiKey)."""

    api_key: ApiKey

    # Django and DRF read these on request.user.
    is_authenticated = True
    is_anonymous = False

    @property
    def merchant(self) -> Merchant | None:
        return self.api_key.merchant

    @property
    def is_platform(self) -> bool:
        return self.api_key.is_platform
