"""Forget the cached lookups (pgi.lookups) that an edit of a key, a merchant or its currencies makes stale."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from pgi.lookups import lookup_forget

from .models import ApiKey, Merchant, MerchantCurrency


def merchant_lookups_forget(*, merchant_id: int, codes: set[str] = frozenset()) -> None:
    """Forget a merchant (under its codes) and every API key of it (each carries the merchant)."""
    prefixes = ApiKey.objects.filter(merchant_id=merchant_id).values_list("prefix", flat=True)
    lookup_forget("api_key", list(prefixes))
    lookup_forget("merchant", codes or Merchant.objects.filter(pk=merchant_id).values_list("code", flat=True))


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def _api_key_changed(sender, instance: ApiKey, **kwargs):
    lookup_forget("api_key", [instance.prefix])


@receiver(pre_save, sender=Merchant)
def _merchant_code_before(sender, instance: Merchant, **kwargs):
    # A renamed merchant must be forgotten under its old code too.
    instance._code_before = Merchant.objects.filter(pk=instance.pk).values_list("code", flat=True).first() if instance.pk else None


@receiver(post_save, sender=Merchant)
@receiver(post_delete, sender=Merchant)
def _merchant_changed(sender, instance: Merchant, **kwargs):
    codes = {instance.code, getattr(instance, "_code_before", None) or instance.code}
    merchant_lookups_forget(merchant_id=instance.pk, codes=codes)


@receiver(post_save, sender=MerchantCurrency)
@receiver(post_delete, sender=MerchantCurrency)
def _merchant_currency_changed(sender, instance: MerchantCurrency, **kwargs):
    merchant_lookups_forget(merchant_id=instance.merchant_id)
