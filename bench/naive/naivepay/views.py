from rest_framework import generics, serializers

from .models import Payment


class PaymentSerializer(serializers.ModelSerializer):
    fromAccount = serializers.CharField(source="from_account", max_length=64)
    toMerchant = serializers.CharField(source="merchant", max_length=64)

    class Meta:
        model = Payment
        fields = ["id", "amount", "currency", "fromAccount", "toMerchant", "status", "created"]
        read_only_fields = ["id", "status", "created"]


class MerchantPayments:
    serializer_class = PaymentSerializer

    def get_queryset(self):
        return Payment.objects.filter(merchant=self.request.user.merchant)


class PaymentList(MerchantPayments, generics.ListCreateAPIView):
    pass


class PaymentDetail(MerchantPayments, generics.RetrieveAPIView):
    pass
