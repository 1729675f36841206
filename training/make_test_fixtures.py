"""Writes test/fixtures/models/fraud/9: a model that passes streamscore's load-time checks but
fails at run time, for the test that a failing shadow never disturbs the predictions topic.

Its graph reshapes the [N, 8] input to a fixed [2, 8], so the 2-row warm-up succeeds and every
batch of another size raises inside ONNX Runtime. Run: training/.venv/bin/python training/make_test_fixtures.py
"""
import hashlib
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = ["amount", "account_age_days", "tx_count_24h", "distance_from_home_km",
            "merchant_risk", "hour_of_day", "is_foreign", "card_present"]
OUT = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "models" / "fraud" / "9"


def build() -> onnx.ModelProto:
    initializers = [
        numpy_helper.from_array(np.array([2, 8], dtype=np.int64), "fixed_shape"),
        numpy_helper.from_array(np.zeros((8, 1), dtype=np.float32), "weights"),
        numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Reshape", ["features", "fixed_shape"], ["fixed"]),
        helper.make_node("MatMul", ["fixed", "weights"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "fails_unless_two_rows",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="streamscore-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = build().SerializeToString()
    (OUT / "model.onnx").write_bytes(data)
    metadata = {
        "name": "fraud",
        "version": "9",
        "description": "Test fixture: loads and warms up, then fails on every batch that is not exactly 2 rows.",
        "createdAt": "2025-01-01T00:00:00Z",
        "sha256": hashlib.sha256(data).hexdigest(),
        "inputs": [{"tensor": "features", "dtype": "float32", "features": FEATURES}],
        "outputs": [
            {"name": "score", "tensor": "probabilities", "column": 1, "dtype": "float32"},
            {"name": "label", "tensor": "label", "column": None, "dtype": "int64"},
        ],
        "threshold": 0.5,
    }
    (OUT / "model.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
