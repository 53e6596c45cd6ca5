from django.db import models


class ApiKey(models.Model):
    key = models.CharField(max_length=64, unique=True)
    merchant = models.CharField(max_length=64)
    is_authenticated = True  # DRF's IsAuthenticated reads it of request.user


class Payment(models.Model):
    merchant = models.CharField(max_length=64, db_index=True)
    amount = models.DecimalField(max_digits=18, decimal_places=2)
    currency = models.CharField(max_length=3)
    from_account = models.CharField(max_length=64)
    status = models.CharField(max_length=16, default="Completed")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
