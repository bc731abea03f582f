"""The overview's widgets (openpanel-facts §5.2): a registry, so that a new table is one line here.

Each widget is a titled box with tabs; each tab names the report table it shows (any `Reports.top`
table: a dimension, `pages`, `events`, `link_out`, `properties.<key>`) and the heading of its first
column. Widgets with the table template share one generic `_table.html`; the map shares `_map.html`.
Adding "UTM campaign" to Sources is the line `Tab("utm_campaign", "Campaign", "UTM campaign")`.

The selected tab of widget `sources` lives in the URL as `sources=<tab key>` (the first tab when absent).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from openpanel_lite.dashboard import worldmap_data
from openpanel_lite.query import Dimension, ParamError, Property, parse_field

TABLE_TEMPLATE = "dashboard/_table.html"
MAP_TEMPLATE = "dashboard/_map.html"
ROWS = 10  # rows per table, as upstream's overview widgets show
MAP_ROWS = 300  # every country there is, so the map shades all of them

Kind = Literal["table", "map"]


class Tab(NamedTuple):
    """One view of a widget."""

    key: str  # the URL value, e.g. "utm_campaign"
    label: str  # the tab's text, e.g. "Campaign"
    heading: str  # the first column's heading
    table: str = ""  # the Reports.top table (defaults to `key`)

    @property
    def report_table(self) -> str:
        return self.table or self.key


class Widget(NamedTuple):
    """A box on the overview: its title, how it is drawn, and its tabs (the first is the default)."""

    title: str
    tabs: tuple[Tab, ...]
    kind: Kind = "table"

    @property
    def template(self) -> str:
        return MAP_TEMPLATE if self.kind == "map" else TABLE_TEMPLATE

    @property
    def rows(self) -> int:
        return MAP_ROWS if self.kind == "map" else ROWS


WIDGETS: dict[str, Widget] = {
    "sources": Widget(
        "Sources",
        (
            Tab("referrer_name", "Refs", "Referrer"),
            Tab("referrer", "URLs", "Referrer URL"),
            Tab("referrer_type", "Types", "Type"),
            Tab("utm_source", "Source", "UTM source"),
            Tab("utm_medium", "Medium", "UTM medium"),
            Tab("utm_campaign", "Campaign", "UTM campaign"),
            Tab("utm_term", "Term", "UTM term"),
            Tab("utm_content", "Content", "UTM content"),
        ),
    ),
    "pages": Widget(
        "Pages",
        (
            Tab("top", "Top", "Page", "pages"),
            Tab("entry", "Entry", "Entry page", "entry_path"),
            Tab("exit", "Exit", "Exit page", "exit_path"),
        ),
    ),
    "devices": Widget(
        "Devices",
        (
            Tab("device", "Device", "Device"),
            Tab("browser", "Browser", "Browser"),
            Tab("browser_version", "Browser version", "Browser version"),
            Tab("os", "OS", "OS"),
            Tab("os_version", "OS version", "OS version"),
            Tab("brand", "Brand", "Brand"),
            Tab("model", "Model", "Model"),
        ),
    ),
    "events": Widget(
        "Events",
        (
            Tab("events", "Events", "Event"),
            Tab("link_out", "Link out", "Link"),
        ),
    ),
    "geo": Widget(
        "Geo",
        (
            Tab("country", "Countries", "Country"),
            Tab("region", "Regions", "Region"),
            Tab("city", "Cities", "City"),
        ),
    ),
    "map": Widget("Map", (Tab("countries", "Countries", "Country", "country"),), kind="map"),
}


def tab_of(name: str, key: str | None) -> Tab:
    """The tab `key` of widget `name` (its first tab when `key` is empty); ParamError names the widget."""
    widget = WIDGETS[name]
    if not key:
        return widget.tabs[0]
    for tab in widget.tabs:
        if tab.key == key:
            return tab
    choices = ", ".join(t.key for t in widget.tabs)
    raise ParamError(name, f"unknown tab {key!r}; one of {choices}")


# ------------------------------------------------------------------------------------------------
# how fields and values read on the page (tables, filter chips)

FIELD_LABELS: dict[str, str] = {
    Dimension.NAME: "Event",
    Dimension.PATH: "Page",
    Dimension.ORIGIN: "Origin",
    Dimension.REFERRER: "Referrer URL",
    Dimension.REFERRER_NAME: "Referrer",
    Dimension.REFERRER_TYPE: "Referrer type",
    Dimension.UTM_SOURCE: "UTM source",
    Dimension.UTM_MEDIUM: "UTM medium",
    Dimension.UTM_CAMPAIGN: "UTM campaign",
    Dimension.UTM_TERM: "UTM term",
    Dimension.UTM_CONTENT: "UTM content",
    Dimension.COUNTRY: "Country",
    Dimension.REGION: "Region",
    Dimension.CITY: "City",
    Dimension.DEVICE: "Device",
    Dimension.BROWSER: "Browser",
    Dimension.BROWSER_VERSION: "Browser version",
    Dimension.OS: "OS",
    Dimension.OS_VERSION: "OS version",
    Dimension.BRAND: "Brand",
    Dimension.MODEL: "Model",
    Dimension.ENTRY_PATH: "Entry page",
    Dimension.ENTRY_ORIGIN: "Entry origin",
    Dimension.EXIT_PATH: "Exit page",
    Dimension.EXIT_ORIGIN: "Exit origin",
}
_PROPERTY_LABELS = {"href": "Link"}
# Empty values: no referrer means direct traffic; anything else was simply not sent.
_EMPTY_LABELS: dict[str, str] = {
    Dimension.REFERRER_NAME: "Direct / none",
    Dimension.REFERRER: "Direct / none",
    Dimension.REFERRER_TYPE: "Direct / none",
}
NOT_SET = "(not set)"
COUNTRY_NAMES: dict[str, str] = {code: name for code, name, _path in worldmap_data.COUNTRIES if code}


def field_label(field: Dimension | Property) -> str:
    if isinstance(field, Property):
        return _PROPERTY_LABELS.get(field.key, f"Property {field.key}")
    return FIELD_LABELS.get(field, field.value)


def field_of(name: str) -> Dimension | Property | None:
    """A filter field name as a field, or None for names the query layer does not know."""
    try:
        return parse_field(name)
    except ValueError:
        return None


def value_label(field: Dimension | Property, value: object) -> str:
    """How a stored value reads: country names for codes, a word for empty values."""
    text = "" if value is None else str(value)
    if text == "":
        return _EMPTY_LABELS.get(field, NOT_SET) if isinstance(field, Dimension) else NOT_SET
    if field is Dimension.COUNTRY:
        return COUNTRY_NAMES.get(text.upper(), text)
    return text
