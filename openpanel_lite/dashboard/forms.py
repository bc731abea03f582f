"""HTML form bodies -> msgspec Structs, so handlers never touch raw form dicts."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from openpanel_lite.dashboard.session import CSRF_FIELD

T = TypeVar("T", bound=msgspec.Struct)

MAX_FIELD_LEN = 20_000  # far above any real field (CORS lists included), far below abuse


class FormError(ValueError):
    """A form that cannot be read; the message is shown next to the form."""


async def read_form(request: Request[Any, Any, Any], into: type[T]) -> T:
    """The urlencoded/multipart body as ``into``; unknown fields (the CSRF token) are ignored.

    Checkboxes are absent when unticked and "on" when ticked: declare them ``str = ""``.
    """
    form = await request.form()
    data: dict[str, str] = {}
    for key, value in form.items():
        if key == CSRF_FIELD or not isinstance(value, str):
            continue
        if len(value) > MAX_FIELD_LEN:
            raise FormError(f"{key} is too long")
        data[key] = value
    try:
        return msgspec.convert(data, into, strict=False)
    except msgspec.ValidationError as e:
        raise FormError(f"invalid form: {e}") from None


def lines(text: str) -> list[str]:
    """A textarea with one entry per line (commas also separate); blanks dropped, order kept."""
    items = [part.strip() for line in text.splitlines() for part in line.split(",")]
    return list(dict.fromkeys(item for item in items if item))
