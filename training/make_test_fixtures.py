"""Writes the model fixtures under test/fixtures/models/fraud, each a model that passes streamscore's
load-time checks (signature, a finite warm-up on zeros) but misbehaves at run time:

  9  fails on every batch that is not exactly 2 rows: its graph reshapes the [N, 8] input to a
     fixed [2, 8]. A version that fails as a whole (a shadow that fails, a primary that stalls).
  7  fails on the rows whose hour_of_day is not in 0..23: the hour indexes a 24-entry table, and
     ONNX Runtime refuses an index out of range. A model that fails on some rows' data.
  6  scores +Inf for every row whose amount is not 0 (the amount is multiplied by 1e38 twice).
     A model whose outputs are not finite on real rows.
  5  a working logistic model over seven of the eight features (no card_present), so a switch
     between it and the eight-feature versions changes the features events must carry.

And under test/fixtures/models/external, one logistic model stored four ways, for the checks on
ONNX external data (tensors whose bytes live in another file, named by a "location" entry):

  1  inline: every weight inside model.onnx.
  2  the weights and the bias in weights.bin, listed in model.json's "files" with its sha256.
  3  the bias in a Constant node's tensor (an attribute, not an initializer), in constant.bin,
     listed: external data is found wherever the graph keeps a tensor.
  4  the weights read from "../weights.bin", outside the version folder.
  5  the weights read from an absolute path.

Run: training/.venv/bin/python training/make_test_fixtures.py
"""
import hashlib
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = ["amount", "account_age_days", "tx_count_24h", "distance_from_home_km",
            "merchant_risk", "hour_of_day", "is_foreign", "card_present"]
MODELS = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "models"
ROOT = MODELS / "fraud"


def two_probabilities(nodes, initializers, logit: str):
    """Appends sigmoid(logit) as the [N, 2] probabilities and their argmax as the label."""
    initializers.append(numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), "one"))
    nodes += [
        helper.make_node("Sigmoid", [logit], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]


def fails_unless_two_rows():
    initializers = [
        numpy_helper.from_array(np.array([2, 8], dtype=np.int64), "fixed_shape"),
        numpy_helper.from_array(np.zeros((8, 1), dtype=np.float32), "weights"),
    ]
    nodes = [
        helper.make_node("Reshape", ["features", "fixed_shape"], ["fixed"]),
        helper.make_node("MatMul", ["fixed", "weights"], ["logit"]),
    ]
    two_probabilities(nodes, initializers, "logit")
    return nodes, initializers


def fails_on_bad_hours():
    initializers = [
        numpy_helper.from_array(np.array([5], dtype=np.int64), "hour_column"),
        numpy_helper.from_array(np.linspace(-2.0, 2.0, 24, dtype=np.float32).reshape(24, 1), "hour_table"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "second_axis"),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "hour_column"], ["hour_f"], axis=1),  # [N, 1]
        helper.make_node("Cast", ["hour_f"], ["hour_i"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["hour_i", "second_axis"], ["hour"]),  # [N], also for N = 1
        # Gather with an index outside [-24, 23] is an error in ONNX Runtime; negative hours below
        # -24 and hours from 24 up fail, each on its own row's value.
        helper.make_node("Gather", ["hour_table", "hour"], ["logit"], axis=0),  # [N, 1]
    ]
    two_probabilities(nodes, initializers, "logit")
    return nodes, initializers


def infinite_unless_zero_amount():
    initializers = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "amount_column"),
        numpy_helper.from_array(np.array([[1e38]], dtype=np.float32), "huge"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "second_axis"),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "amount_column"], ["amount"], axis=1),  # [N, 1]
        helper.make_node("Abs", ["amount"], ["size"]),
        helper.make_node("Mul", ["size", "huge"], ["big"]),
        helper.make_node("Mul", ["big", "huge"], ["score"]),  # +Inf unless the amount is 0
        helper.make_node("Cast", ["score"], ["label_f"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["label_f", "second_axis"], ["label"]),
        helper.make_node("Concat", ["score", "score"], ["probabilities"], axis=1),
    ]
    return nodes, initializers


def seven_features():
    weights = np.array([[0.002], [-0.001], [0.05], [0.003], [1.5], [0.01], [0.8]], dtype=np.float32)
    initializers = [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array([[-2.0]], dtype=np.float32), "bias")]
    nodes = [
        helper.make_node("MatMul", ["features", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["logit"]),
    ]
    two_probabilities(nodes, initializers, "logit")
    return nodes, initializers


def scores_high():
    """A working model whose scores sit around 0.73 (logit 1 plus a little of merchant_risk): as
    valid as any, but scoring nothing like the fraud models, whose scores sit near 0."""
    weights = np.zeros((8, 1), dtype=np.float32)
    weights[4, 0] = 0.5
    initializers = [numpy_helper.from_array(weights, "weights"),
                    numpy_helper.from_array(np.array([[1.0]], dtype=np.float32), "bias")]
    nodes = [
        helper.make_node("MatMul", ["features", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["logit"]),
    ]
    two_probabilities(nodes, initializers, "logit")
    return nodes, initializers


def build(name, parts, width=8, check=True):
    nodes, initializers = parts
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="streamscore-tests")
    model.ir_version = 8
    if check:  # the checker looks for external-data files relative to the working directory
        onnx.checker.check_model(model)
    return model


def write(version: str, description: str, model, features=FEATURES, name="fraud", files=None) -> None:
    """Writes <name>/<version>: model.onnx, model.json and `files` ({path: bytes}, listed in model.json)."""
    out = MODELS / name / version
    out.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (out / "model.onnx").write_bytes(data)
    for path, content in (files or {}).items():
        (out / path).write_bytes(content)
    metadata = {
        "name": name,
        "version": version,
        "description": description,
        "createdAt": "2025-01-01T00:00:00Z",
        "sha256": hashlib.sha256(data).hexdigest(),
        "inputs": [{"tensor": "features", "dtype": "float32", "features": features}],
        "outputs": [
            {"name": "score", "tensor": "probabilities", "column": 1, "dtype": "float32"},
            {"name": "label", "tensor": "label", "column": None, "dtype": "int64"},
        ],
        "threshold": 0.5,
    }
    if files:
        metadata["files"] = [{"path": path, "sha256": hashlib.sha256(content).hexdigest()}
                             for path, content in files.items()]
    (out / "model.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {out}")


WEIGHTS = np.array([[0.002], [-0.001], [0.05], [0.003], [1.5], [0.01], [0.8], [-0.6]], dtype=np.float32)
BIAS = np.array([[-2.0]], dtype=np.float32)


def external(tensor, location: str, offset: int = 0) -> bytes:
    """Moves a tensor's bytes out of the model: returns them, and leaves a reference to `location`."""
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return data


def logistic(weights_at=None, bias_in_constant_at=None):
    """The eight-feature logistic model; with weights_at, its initializers read from that location
    (both from one file); with bias_in_constant_at, the bias is a Constant node's external tensor.
    Returns the model and the external bytes by location."""
    weights = numpy_helper.from_array(WEIGHTS, "weights")
    bias = numpy_helper.from_array(BIAS, "bias")
    files = {}
    nodes = [helper.make_node("MatMul", ["features", "weights"], ["product"])]
    if weights_at is not None:
        first = external(weights, weights_at)
        files[weights_at] = first + external(bias, weights_at, offset=len(first))
    initializers = [weights, bias]
    if bias_in_constant_at is not None:
        initializers = [weights]
        files[bias_in_constant_at] = external(bias, bias_in_constant_at)
        nodes.append(helper.make_node("Constant", [], ["bias"], value=bias))
    nodes.append(helper.make_node("Add", ["product", "bias"], ["logit"]))
    two_probabilities(nodes, initializers, "logit")
    # Version 1 (inline) is checked; the others are the same graph with their tensors moved.
    return build("logistic", (nodes, initializers), check=not files), files


def main() -> None:
    write("9", "Test fixture: loads and warms up, then fails on every batch that is not exactly 2 rows.",
          build("fails_unless_two_rows", fails_unless_two_rows()))
    write("7", "Test fixture: fails on rows whose hour_of_day is outside 0..23 (an index out of range).",
          build("fails_on_bad_hours", fails_on_bad_hours()))
    write("6", "Test fixture: scores +Inf for every row whose amount is not 0.",
          build("infinite_unless_zero_amount", infinite_unless_zero_amount()))
    write("8", "Test fixture: a working model whose scores sit around 0.73, far from the fraud models' scores.",
          build("scores_high", scores_high()))
    write("5", "Test fixture: a working logistic model over seven features (no card_present).",
          build("seven_features", seven_features(), width=7), features=FEATURES[:7])

    model, _ = logistic()
    write("1", "Test fixture: a logistic model, every weight inside model.onnx.", model, name="external")
    model, files = logistic(weights_at="weights.bin")
    write("2", "Test fixture: version 1 with its weights in weights.bin (listed).", model, name="external",
          files=files)
    model, files = logistic(bias_in_constant_at="constant.bin")
    write("3", "Test fixture: version 1 with its bias in a Constant node's external tensor (listed).", model,
          name="external", files=files)
    model, _ = logistic(weights_at="../weights.bin")
    write("4", "Test fixture: reads its weights from outside its folder (refused).", model, name="external")
    model, _ = logistic(weights_at="/etc/streamscore/weights.bin")
    write("5", "Test fixture: reads its weights from an absolute path (refused).", model, name="external")


if __name__ == "__main__":
    main()
