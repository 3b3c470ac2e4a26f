"""NHTSA's envelope and its three output formats (json, csv, xml), as vpic.nhtsa.dot.gov prints them.

Shapes are checked against live NHTSA bodies recorded in public client libraries' fixtures
(tests/data/nhtsa/, PROVENANCE.md there): envelope keys Count, Message, SearchCriteria, Results in
that order; values keep NHTSA's types (decode values are strings, ids of the list paths numbers).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from xml.sax.saxutils import escape

FORMATS = ("json", "csv", "xml")
DEFAULT_FORMAT = "xml"  # NHTSA answers XML when no format is given

MEDIA_TYPES = {"json": "application/json; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "xml": "application/xml; charset=utf-8"}

# NHTSA's messages, as recorded.
MSG_RESPONSE = "Response returned successfully"
MSG_RESULTS = "Results returned successfully"
MSG_DECODE = ("Results returned successfully. NOTE: Any missing decoded values should be interpreted as "
              "NHTSA does not have data on the specific variable. Missing value should NOT be interpreted "
              "as an indication that a feature or technology is unavailable for a vehicle.")


def envelope(results: list[dict[str, Any]], message: str, criteria: str | None,
             count: int | None = None) -> dict[str, Any]:
    return {"Count": len(results) if count is None else count, "Message": message,
            "SearchCriteria": criteria, "Results": results}


def render(body: dict[str, Any], fmt: str, item: str) -> tuple[bytes, str]:
    """Bytes and media type of an envelope in `fmt`; `item` is the XML element of one result."""
    if fmt == "json":
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    elif fmt == "csv":
        text = _csv(body["Results"])
    else:
        text = _xml(body, item)
    return text.encode("utf-8"), MEDIA_TYPES[fmt]


def _csv(results: list[dict[str, Any]]) -> str:
    """The results only (no envelope): a header of lower-cased field names, one line per result."""
    out = io.StringIO()
    if results:
        keys = list(results[0])
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([k.lower() for k in keys])
        for row in results:
            writer.writerow([_csv_value(row.get(k)) for k in keys])
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Element order where NHTSA's XML differs from its JSON (recorded: tests/data/nhtsa/decode-vin-fragment.xml);
# XmlSerializer writes a class's declaration order, the JSON sorts keys alphabetically.
XML_ORDER = {"DecodedVariable": ("VariableId", "Variable", "ValueId", "Value")}


def _xml(body: dict[str, Any], item: str) -> str:
    """.NET XmlSerializer's layout: null values are left out, every element named after its key."""
    order = XML_ORDER.get(item, ())
    parts = ['<?xml version="1.0" encoding="utf-8"?>',
             '<Response xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">']
    parts.append(f"<Count>{body['Count']}</Count>")
    parts.append(f"<Message>{escape(body['Message'])}</Message>")
    if body["SearchCriteria"] is not None:
        parts.append(f"<SearchCriteria>{escape(body['SearchCriteria'])}</SearchCriteria>")
    parts.append("<Results>")
    for row in body["Results"]:
        if order:
            row = {k: row[k] for k in order if k in row} | row
        parts.append(f"<{item}>{_xml_fields(row)}</{item}>")
    parts.append("</Results></Response>")
    return "".join(parts)


def _xml_fields(row: dict[str, Any]) -> str:
    out = []
    for key, value in row.items():
        if value is None:
            continue
        if isinstance(value, list):
            inner = "".join(f"<{key[:-1] or key}>{_xml_fields(v)}</{key[:-1] or key}>" for v in value)
            out.append(f"<{key}>{inner}</{key}>")
        elif isinstance(value, bool):
            out.append(f"<{key}>{'true' if value else 'false'}</{key}>")
        elif value == "":
            out.append(f"<{key} />")
        else:
            out.append(f"<{key}>{escape(str(value))}</{key}>")
    return "".join(out)
