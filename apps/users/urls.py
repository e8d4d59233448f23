from django.urls import path

from apps.users import views

app_name = "users"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("language/", views.language, name="language"),
]
