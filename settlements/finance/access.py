"""Who may use the finance UI: signed-in users with `settlements.use_finance_ui` (the `Finance`
group has it, with the view permissions each page also names). Others are sent to the finance
sign-in (anonymous) or get a 403 page (signed in, not finance: merchants' staff, admin staff without
the group). Superusers pass, as they pass every permission check in Django: they can add themselves
to the group anyway, and refusing them would only hide the UI from whoever administers it.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse

USE_FINANCE_UI = "settlements.use_finance_ui"


def finance_required(*permissions: str):
    """View decorator: sign-in, then USE_FINANCE_UI and `permissions`, else the 403 page."""

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("finance:login"))
            if not user.has_perms([USE_FINANCE_UI, *permissions]):
                return render(request, "finance/forbidden.html", {"missing": permissions}, status=403)
            return view(request, *args, **kwargs)

        return guarded

    return decorate
