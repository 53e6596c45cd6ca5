"""A NUL byte anywhere in a URL, a query parameter or a cookie is 400, never 500 (PostgreSQL refuses
NUL in text, so it used to fail the first lookup it reached). Walks every page of every registered
ModelAdmin as a superuser."""

from urllib.parse import quote

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db

NUL = "%00"
MODEL_ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def admin_url(model, view: str, object_id: str | None = None) -> str:
    """The admin URL; an object id is put in as given (reverse() would escape its `%`)."""
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"
    if object_id is None:
        return reverse(name)
    return reverse(name, args=["OBJECT-ID"]).replace("OBJECT-ID", object_id)


def changelist_parameters(model, model_admin, superuser) -> list[str]:
    """Every query parameter the changelist reads: search, ordering, page, each filter, the dates."""
    request = RequestFactory().get(admin_url(model, "changelist"))
    request.user = superuser
    changelist = model_admin.get_changelist_instance(request)
    parameters = ["q", "o", "p", "_to_field", "e"]
    for spec in changelist.filter_specs:
        parameters.extend(spec.expected_parameters())
    if model_admin.date_hierarchy:
        parameters.extend(f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return parameters


@pytest.fixture
def superuser_client(admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(("model", "model_admin"), MODEL_ADMINS, ids=[m._meta.label for m, _ in MODEL_ADMINS])
def test_every_admin_page_refuses_a_nul_in_its_object_id_search_and_filters(superuser_client, admin_user, model, model_admin):
    pages = [admin_url(model, view, f"pay_{NUL}x") for view in ("change", "history", "delete")]
    changelist = admin_url(model, "changelist")
    pages += [f"{changelist}?{parameter}={NUL}" for parameter in changelist_parameters(model, model_admin, admin_user)]
    pages.append(f"{changelist}?status{NUL}=1")  # in a parameter's name, too

    answers = {page: superuser_client.get(page).status_code for page in pages}

    assert {page: code for page, code in answers.items() if code != 400} == {}


@pytest.mark.parametrize(
    "url",
    ["/admin/payments/payment/pay_%00x/change/", "/admin/payments/payment/?status=%00", "/admin/payments/payment/?q=%00"],
)
def test_the_reported_admin_urls_are_400(superuser_client, url):
    assert superuser_client.get(url).status_code == 400


def test_a_nul_in_a_post_to_the_admin_url_is_400_and_changes_nothing(superuser_client, merchant):
    response = superuser_client.post(admin_url(type(merchant), "change", f"{merchant.pk}{NUL}"), {"name": "Renamed"})

    assert response.status_code == 400
    merchant.refresh_from_db()
    assert merchant.name == "Demo Shop"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/payments/pay_%00x",
        "/v1/payments/pay_%00x/status",
        "/v1/payments/pay_%00x/refunds",
        *[f"/v1/payments?{name}=%00" for name in ("status", "reference", "currency", "createdFrom", "createdTo", "limit", "cursor")],
    ],
)
def test_the_api_answers_a_nul_itself_in_its_error_format(api, url):
    """The API checks its own ids and parameters (the middleware leaves /v1 to it)."""
    api.raise_request_exception = False

    response = api.get(url)

    assert response.status_code in (400, 404), url
    assert set(response.json()) == {"error"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("url", ["/docs/%00/", "/health?verbose=%00", "/?next=%00"])
def test_a_nul_on_other_pages_is_a_plain_400(url):
    response = Client(raise_request_exception=False).get(url)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_a_nul_in_the_session_cookie_is_400(db):
    client = Client(raise_request_exception=False)

    response = client.get("/admin/", HTTP_COOKIE='sessionid="\\000abcdefghijklmnop"')

    assert response.status_code == 400


def test_a_nul_in_the_login_form_is_a_form_error_not_a_500(db, admin_user):
    client = Client(raise_request_exception=False)

    response = client.post(reverse("admin:login"), {"username": "admin\x00", "password": "password"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_an_encoded_percent_sign_is_not_a_nul(superuser_client):
    response = superuser_client.get(f"{reverse('admin:payments_payment_changelist')}?q={quote('%00')}")

    assert response.status_code == 200
