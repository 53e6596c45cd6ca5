"""Django's messages (the admin's and the finance UI's "saved" notes), their stores built on first use.

Django's default storage builds a cookie store (with a signer: the signing backend imported anew
and the secret keys read) and a session store for every request, API requests included, though
only a page that adds or shows a message uses them: about 2.5 % of the CPU of an API GET by id.
This storage is Django's FallbackStorage (cookie, then session) with its stores built the first time
a message is added or read. A request that does neither never builds them, and its response is
left alone, as FallbackStorage leaves it (`BaseStorage.update` stores nothing unless messages were
read or added). tests/web/test_messages.py checks both.
"""

from django.contrib.messages.storage.fallback import FallbackStorage
from django.utils.functional import cached_property


class LazyFallbackStorage(FallbackStorage):
    def __init__(self, *args, **kwargs):
        super(FallbackStorage, self).__init__(*args, **kwargs)  # BaseStorage's: the request, no stores
        self._store_args = (args, kwargs)
        self._used_storages = set()

    @cached_property
    def storages(self):
        args, kwargs = self._store_args
        return [storage_class(*args, **kwargs) for storage_class in self.storage_classes]
