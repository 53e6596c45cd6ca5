"""Sign-in and sign-out of the finance UI. Django's own views: django-axes counts the failures of
this form as of the admin's (the same authentication backends), and a locked-out sign-in gets the
finance lockout page (pgi.web.views.login_locked_out picks it by this URL namespace)."""

from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy


class FinanceLoginView(auth_views.LoginView):
    template_name = "finance/login.html"

    def get_default_redirect_url(self):
        return str(reverse_lazy("finance:dashboard"))


class FinanceLogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView): a link or an image cannot sign anyone out."""

    next_page = reverse_lazy("finance:login")
