"""NHTSA's output formats (vehicle_etl/serving/vpic_api/formats.py) against recorded NHTSA bodies."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from vehicle_etl.serving.vpic_api import formats as f

NHTSA = Path(__file__).resolve().parent.parent / "data" / "nhtsa"


def _shape(e: ET.Element) -> list:
    """Tags in document order with the text of leaf elements (None for an empty one)."""
    return [(c.tag, _shape(c) if len(c) else (c.text or None)) for c in e]


def test_a_decoded_variable_prints_in_nhtsas_xml_order_not_the_jsons() -> None:
    recorded = ET.parse(NHTSA / "decode-vin-fragment.xml").getroot()
    # the same variable as NHTSA's JSON prints it (alphabetical keys), from the recorded JSON answer
    row = json.loads((NHTSA / "decode-vin-unflattened.json").read_text())["content"]["Results"][0]
    assert list(row) == ["Value", "ValueId", "Variable", "VariableId"] and row["Variable"] == "Suggested VIN"
    body = f.envelope([row], f.MSG_DECODE, "VIN:2HKRM4H74FH695177", count=142)
    ours = ET.fromstring(f.render(body, "xml", "DecodedVariable")[0])
    assert _shape(ours) == _shape(recorded)


def test_other_results_keep_their_json_order_in_xml() -> None:
    row = {"Make_ID": 441, "Make_Name": "TESLA", "Model_ID": 1685, "Model_Name": "Model S"}
    ours = ET.fromstring(f.render(f.envelope([row], f.MSG_RESULTS, "Make:441"), "xml", "MakeModels")[0])
    assert [c.tag for c in ours.find("Results")[0]] == list(row)  # type: ignore[index]
