"""Query parameters read as strictly as bodies: no empty values, no repeats, no unknown names."""

import django_filters
from django.http import QueryDict
from rest_framework.exceptions import ValidationError


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet whose `errors` also name query parameters that django-filter would ignore.

    django-filter skips an empty value and keeps the last of repeated ones, so `?createdTo=` or
    `?currency=EUR&currency=USD` would list more, or other, payments than asked for.
    `other_params` are the ones another component reads (the paginator's cursor and page size).
    """

    other_params: tuple[str, ...] = ()

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.param_errors = self._check_params(data if data is not None else QueryDict(), self.filters)

    @classmethod
    def filtered(cls, data, *, queryset, request=None):
        """The queryset as `data` filters it; a DRF ValidationError naming each bad parameter.

        With no filter named in `data` (a first page, or a cursor's next one) the queryset is
        returned as it is, after the same checks of the other parameters, and no filter set is
        built: django-filter deep-copies every filter and form field of each one it builds."""
        if any(name not in cls.other_params for name in data):
            filterset = cls(data, queryset=queryset, request=request)
            if not filterset.is_valid():
                raise ValidationError(filterset.errors)
            return filterset.qs
        errors = cls._check_params(data, cls.base_filters)
        if errors:
            raise ValidationError(errors)
        return queryset

    @classmethod
    def _check_params(cls, data, filters) -> dict[str, list[str]]:
        errors = {}
        for name in data:
            values = data.getlist(name)
            known = filters.get(name)
            if known is None and name not in cls.other_params:
                errors[name] = ["Unknown query parameter."]
            elif len(values) > 1 and not isinstance(known, django_filters.MultipleChoiceFilter):
                errors[name] = ["Give this parameter at most once."]
            elif any(value == "" for value in values):
                errors[name] = ["Must not be empty."]
        return errors

    def is_valid(self) -> bool:
        return super().is_valid() and not self.param_errors

    @property
    def errors(self) -> dict:
        return {**self.form.errors, **self.param_errors}


class MerchantScopedFilterSet(StrictFilterSet):
    """A list a merchant key sees only its own part of (a platform key sees every merchant's). Its
    `merchant` filter may name the key's own merchant only: another merchant's code would list
    nothing and look like "none there", so it is refused instead. `listed` names what is listed."""

    listed = "items"

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        principal = getattr(self.request, "user", None)
        wanted = self.data.get("merchant")
        if wanted and principal is not None and not principal.is_platform and wanted != principal.merchant.code:
            self.param_errors.setdefault("merchant", [f"A merchant key lists its own {self.listed} only."])
