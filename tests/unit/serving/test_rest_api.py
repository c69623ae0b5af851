"""TF Serving's REST request and response shapes, without a model."""
import base64
import json

import pytest

from tasks.errors import HotdogInputError
from tasks.serving.rest_api import format_predictions, parse_predict


def body(doc):
    return json.dumps(doc).encode()


B64 = {"b64": base64.b64encode(b"\x00serialized").decode()}


@pytest.mark.parametrize("doc, columnar", [
    ({"instances": [B64, B64]}, False),
    ({"instances": [{"examples": B64}, {"examples": B64}]}, False),
    ({"inputs": [B64, B64]}, True),
    ({"inputs": {"examples": [B64, B64]}}, True),
])
def test_row_and_columnar_requests(doc, columnar):
    assert parse_predict(body(doc)) == ("serving_default", [b"\x00serialized"] * 2, columnar)


@pytest.mark.parametrize("raw, message", [
    (b"{", "not valid JSON"),
    (b"[1]", "JSON object"),
    (body({"instances": [B64], "inputs": [B64]}), "Missing 'inputs' or 'instances'"),
    (body({}), "Missing 'inputs' or 'instances'"),
    (body({"instances": []}), "non-empty list"),
    (body({"instances": [{"b64": "***"}]}), "instance 0: 'b64' is not valid base64"),
    (body({"instances": [B64, 7]}), "instance 1: expected"),
    (body({"inputs": {"pixels": [B64]}}), "unknown input"),
    (body({"signature_name": "train", "instances": [B64]}), 'signature name: "train" not found'),
])
def test_malformed_requests_name_the_problem(raw, message):
    with pytest.raises(HotdogInputError, match=message):
        parse_predict(raw)


class Version:
    classes = ["rose", "tulip"]


def test_responses_follow_the_signature_and_the_request_format():
    rows = [[0.25, 0.75]]
    assert format_predictions("serving_default", rows, Version, False) == {"predictions": [[0.25, 0.75]]}
    assert format_predictions("serving_default", rows, Version, True) == {"outputs": [[0.25, 0.75]]}
    assert format_predictions("classify", rows, Version, False) == {
        "predictions": [{"classes": ["rose", "tulip"], "scores": [0.25, 0.75]}]}
    assert format_predictions("classify", rows, Version, True) == {
        "outputs": {"classes": [["rose", "tulip"]], "scores": [[0.25, 0.75]]}}
