"""The search page's own pieces: metadata filters as typed in its form, facet values as links that add (or
take back) one filter, and a hit's pages as a reader cites them. The search itself is GET /v1/search's
(api/v1_search.py), so the page and the API cannot disagree on what a filter keeps."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from api.schemas import display_name


def conditions(where: list[str]) -> list[str]:
    """`where` values of the query string, one condition per line (the form's text area sends several lines
    in one value, a facet link one value each), blank lines dropped, each kept once in order."""
    lines = (line.strip() for value in where for line in value.splitlines())
    return list(dict.fromkeys(line for line in lines if line))


def facet_keys(facet: list[str]) -> list[str]:
    """Facet keys from `facet` values, each a comma-separated list (a metadata key never holds a comma)."""
    keys = (key.strip() for value in facet for key in value.split(","))
    return list(dict.fromkeys(key for key in keys if key))


def equality(key: str, value: str) -> str:
    """The filter `key=value` for one facet value: a comma in it is literal, not an any-of."""
    return f"{key}={value.replace(',', chr(92) + ',')}"


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str  # what the page shows: an upload's name rather than where the server keeps it
    count: int
    active: bool  # its filter is applied: the link takes it back
    url: str


def facet_links(
    facets: dict[str, list[dict]], state: dict[str, object], where: list[str], uploads_prefix: str
) -> dict[str, list[FacetValue]]:
    """Each facet value with the page URL that adds `key=value` to the filters, or drops it when applied."""
    out: dict[str, list[FacetValue]] = {}
    for key, buckets in facets.items():
        values = []
        for bucket in buckets:
            condition = equality(key, bucket["value"])
            active = condition in where
            wanted = [w for w in where if w != condition] if active else [*where, condition]
            label = display_name(bucket["value"], uploads_prefix) if key == "source" else bucket["value"]
            values.append(FacetValue(bucket["value"], label, bucket["count"], active, search_url(state, wanted)))
        out[key] = values
    return out


def search_url(state: dict[str, object], where: list[str]) -> str:
    """/ui/search with the page's query, mode and filters (`state`, empty values left out) and `where`."""
    params = [(name, value) for name, value in state.items() if value not in ("", None)]
    params += [("where", w) for w in where]
    return f"/ui/search?{urlencode(params)}"


def pages_label(pages: list[int] | None) -> str:
    """`p. 3`, `pp. 3-4`, `pp. 2, 5-7`; "" without pages (formats other than PDF)."""
    found = sorted(set(pages or []))
    if not found:
        return ""
    runs: list[list[int]] = []
    for page in found:
        if runs and page == runs[-1][-1] + 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"{'p' if len(found) == 1 else 'pp'}. {text}"
