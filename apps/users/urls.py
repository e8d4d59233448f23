from django.urls import path

from apps.users import key_pages, views

app_name = "users"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("language/", views.language, name="language"),
    path("api-keys/", key_pages.apikey_list, name="apikey_list"),
    path("api-keys/<int:pk>/revoke/", key_pages.apikey_revoke, name="apikey_revoke"),
]
