from __future__ import annotations

import zoneinfo
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.fields.files import FieldFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _
from PIL import Image, UnidentifiedImageError

AVATAR_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}


@cache
def time_zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def validate_time_zone(value: str) -> None:
    if value and value not in time_zone_names():
        raise ValidationError(
            _("“%(value)s” is not a known time zone."), code="invalid_time_zone", params={"value": value}
        )


def validate_avatar(value: FieldFile) -> None:
    """Refuse avatars that are too large, are not PNG/JPEG/GIF/WebP, or have huge dimensions."""
    if getattr(value, "_committed", True):
        return  # an avatar already stored was checked when it was uploaded
    if value.size > settings.AVATAR_MAX_BYTES:
        raise ValidationError(
            _("The avatar is %(size)s; the largest accepted is %(limit)s."),
            code="avatar_too_large",
            params={"size": filesizeformat(value.size), "limit": filesizeformat(settings.AVATAR_MAX_BYTES)},
        )
    try:
        value.seek(0)
        with Image.open(value) as image:
            image_format, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValidationError(_("The avatar must be a PNG, JPEG, GIF or WebP image."), code="avatar_not_image") from exc
    finally:
        value.seek(0)
    if image_format not in AVATAR_FORMATS:
        raise ValidationError(_("The avatar must be a PNG, JPEG, GIF or WebP image."), code="avatar_not_image")
    limit = settings.AVATAR_MAX_PIXELS
    if width > limit or height > limit:
        raise ValidationError(
            _("The avatar is %(width)s×%(height)s pixels; the largest accepted is %(limit)s×%(limit)s."),
            code="avatar_too_wide",
            params={"width": width, "height": height, "limit": limit},
        )
