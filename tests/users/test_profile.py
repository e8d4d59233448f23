"""Profile: display name, avatar (size and type checked), language and time zone."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.users.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def image_upload(
    name: str = "me.png", image_format: str = "PNG", size: tuple[int, int] = (64, 64)
) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format=image_format)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{image_format.lower()}")


@pytest.fixture
def user(client):
    user = UserFactory(username="grace")
    client.force_login(user)
    return user


def save_profile(client, **fields):
    data = {"display_name": "", "language": "", "time_zone": "", **fields}
    return client.post("/accounts/profile/", data)


def test_it_needs_a_signed_in_user(client):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_saves_the_display_name_language_and_time_zone(client, user):
    response = save_profile(client, display_name="Grace H.", language="zh-hans", time_zone="Asia/Shanghai")
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.language, user.time_zone) == ("Grace H.", "zh-hans", "Asia/Shanghai")
    assert response.cookies["django_language"].value == "zh-hans"


def test_the_chosen_language_applies_to_every_page(client, user):
    save_profile(client, language="zh-hans")
    client.cookies.pop("django_language", None)  # the profile alone decides
    response = client.get("/accounts/profile/", headers={"Accept-Language": "en"})
    assert response["Content-Language"] == "zh-hans"


def test_an_unknown_time_zone_is_refused_and_nothing_changes(client, user):
    response = save_profile(client, display_name="Changed", time_zone="Mars/Olympus_Mons")
    assert response.status_code == 400
    assert "Mars/Olympus_Mons" in response.content.decode()
    user.refresh_from_db()
    assert user.display_name == ""


def test_a_png_avatar_is_stored_under_a_random_name(client, user):
    response = save_profile(client, avatar=image_upload("secret-family-photo.png"))
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar.name.startswith("avatars/")
    assert "secret-family-photo" not in user.avatar.name
    assert user.avatar.storage.exists(user.avatar.name)


def test_replacing_an_avatar_deletes_the_old_file(client, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        save_profile(client, avatar=image_upload())
    user.refresh_from_db()
    old_name = user.avatar.name
    with django_capture_on_commit_callbacks(execute=True):
        save_profile(client, avatar=image_upload("new.webp", "WEBP"))
    user.refresh_from_db()
    assert user.avatar.name != old_name
    assert not user.avatar.storage.exists(old_name)


def test_an_oversized_avatar_is_refused_with_a_message_and_nothing_changes(client, user, settings):
    settings.AVATAR_MAX_BYTES = 1000
    big = SimpleUploadedFile("big.png", image_upload(size=(300, 300)).read() + b"\0" * 2000, content_type="image/png")
    response = save_profile(client, display_name="Changed", avatar=big)
    assert response.status_code == 400
    assert "the largest accepted is 1000" in response.content.decode().replace("\xa0", " ")
    user.refresh_from_db()
    assert (user.display_name, user.avatar.name) == ("", "")


def test_a_non_image_avatar_is_refused_with_a_message(client, user):
    fake = SimpleUploadedFile("avatar.png", b"#!/bin/sh\necho pwned\n", content_type="image/png")
    response = save_profile(client, avatar=fake)
    assert response.status_code == 400
    assert "Upload a valid image" in response.content.decode()
    user.refresh_from_db()
    assert not user.avatar


def test_an_image_in_a_format_we_do_not_accept_is_refused(client, user):
    response = save_profile(client, avatar=image_upload("me.bmp", "BMP"))
    assert response.status_code == 400
    assert "PNG, JPEG, GIF or WebP" in response.content.decode()


def test_an_avatar_with_huge_dimensions_is_refused(client, user, settings):
    settings.AVATAR_MAX_PIXELS = 100
    response = save_profile(client, avatar=image_upload(size=(101, 20)))
    assert response.status_code == 400
    assert "101×20 pixels" in response.content.decode()


def test_the_footer_language_switch_is_remembered_on_the_profile(client, user):
    response = client.post("/accounts/language/", {"language": "zh-hans", "next": "/accounts/profile/"})
    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).language == "zh-hans"


def test_an_anonymous_language_switch_sets_only_the_cookie(client, db):
    response = client.post("/accounts/language/", {"language": "zh-hans", "next": "/accounts/login/"})
    assert response.cookies["django_language"].value == "zh-hans"
    assert client.get("/accounts/login/")["Content-Language"] == "zh-hans"


def test_our_own_pages_are_translated_to_simplified_chinese(client, user):
    user.language = "zh-hans"
    user.save()
    page = client.get("/accounts/profile/").content.decode()
    assert "个人资料" in page
    assert "退出登录" in page
