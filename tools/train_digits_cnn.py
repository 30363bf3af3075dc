"""Train the small CNN that ``hwsim demo`` ships, and write its data and model files.

Run once by a developer, never at run time (needs scikit-learn for the data and
PyTorch for training; neither is a dependency of hwsim):

    python tools/train_digits_cnn.py

Writes, inside the package (``hwsim/demo/``):

* ``digits.npz`` -- the 1797 8x8 handwritten digits bundled with scikit-learn
  (a copy of the UCI "Optical Recognition of Handwritten Digits" test set, see
  ``DIGITS-LICENSE.txt``): ``images`` uint8 [1797, 8, 8] with values 0..16,
  ``labels`` uint8, and the split used here: ``train_index`` (training and
  calibration), ``test_index`` (held out; the demo's accuracy is measured on it).
* ``digits_cnn.onnx`` -- the float model, opset 13, NCHW input ``image``
  float32 [N, 1, 8, 8] = pixel / 16, output ``logits`` [N, 10].  Batch norm is
  kept as BatchNormalization nodes (hwsim folds it at import, and zero-shot
  calibration reads its statistics).

Architecture (about 10k parameters; every op hwsim's integer executor runs):
conv 3x3 1->16 + BN + ReLU; depthwise 3x3 + BN + ReLU; conv 1x1 16->16 + BN,
added to the first conv's output, ReLU; conv 3x3 stride 2 16->32 + BN + ReLU;
flatten; fully connected 512->10 (a long dot product, where
narrow accumulators show).
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parents[1] / "hwsim" / "demo"
SEED = 20261127


def load_digits_split():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.uint8)        # 0..16
    labels = d.target.astype(np.uint8)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(labels))
    n_test = 540
    test_index = np.sort(order[:n_test])
    train_index = np.sort(order[n_test:])
    return images, labels, train_index, test_index


def build_torch_model():
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
            self.c2, self.b2 = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16)
            self.c3, self.b3 = nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16)
            self.c4, self.b4 = nn.Conv2d(16, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64)
            self.fc = nn.Linear(64 * 4 * 4, 10)

        def forward(self, x):
            a = self.b1(self.c1(x)).relu()
            h = self.b2(self.c2(a)).relu()
            h = (self.b3(self.c3(h)) + a).relu()
            h = self.b4(self.c4(h)).relu()
            return self.fc(h.flatten(1))

    return DigitsCNN()


def train(images, labels, train_index):
    import torch

    torch.manual_seed(SEED)
    model = build_torch_model()
    x = torch.tensor(images[train_index], dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(labels[train_index], dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60)
    for _epoch in range(60):
        model.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def to_onnx(model) -> onnx.ModelProto:
    """The trained model as an ONNX graph, written node by node (no exporter needed)."""
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def conv_bn(prefix, conv, bn, x, relu):
        w = const(f"{prefix}.weight", conv.weight.detach().numpy())
        names = [const(f"{prefix}.bn.{k}", getattr(bn, attr).detach().numpy())
                 for k, attr in (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"),
                                 ("var", "running_var"))]
        k = conv.kernel_size[0]
        p = conv.padding[0]
        nodes.append(helper.make_node("Conv", [x, w], [f"{prefix}.conv"], name=f"{prefix}/conv",
                                      kernel_shape=[k, k], pads=[p, p, p, p], strides=list(conv.stride),
                                      group=conv.groups))
        nodes.append(helper.make_node("BatchNormalization", [f"{prefix}.conv"] + names, [f"{prefix}.bn"],
                                      name=f"{prefix}/bn", epsilon=bn.eps))
        if not relu:
            return f"{prefix}.bn"
        nodes.append(helper.make_node("Relu", [f"{prefix}.bn"], [f"{prefix}.relu"], name=f"{prefix}/relu"))
        return f"{prefix}.relu"

    a = conv_bn("conv1", model.c1, model.b1, "image", True)
    h = conv_bn("conv2_dw", model.c2, model.b2, a, True)
    h = conv_bn("conv3_pw", model.c3, model.b3, h, False)
    nodes.append(helper.make_node("Add", [h, a], ["residual"], name="residual/add"))
    nodes.append(helper.make_node("Relu", ["residual"], ["residual.relu"], name="residual/relu"))
    h = conv_bn("conv4", model.c4, model.b4, "residual.relu", True)
    nodes.append(helper.make_node("Flatten", [h], ["features"], name="flatten", axis=1))
    const("fc.weight", model.fc.weight.detach().numpy())
    const("fc.bias", model.fc.bias.detach().numpy())
    nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="hwsim-tools")
    m.ir_version = 8
    m.doc_string = ("hwsim demo model: a small CNN trained on the 8x8 digits (UCI, CC BY 4.0) by "
                    "tools/train_digits_cnn.py; input = pixel / 16")
    onnx.checker.check_model(m)
    return m


def main() -> None:
    import onnxruntime as ort
    import torch

    images, labels, train_index, test_index = load_digits_split()
    model = train(images, labels, train_index)
    proto = to_onnx(model)
    x_test = images[test_index].astype(np.float32)[:, None] / 16.0
    with torch.no_grad():
        ref = model(torch.tensor(x_test)).numpy()
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x_test})[0]
    assert np.abs(got - ref).max() < 1e-4, np.abs(got - ref).max()
    acc = float((got.argmax(1) == labels[test_index]).mean())
    print(f"held-out accuracy {acc:.4f} on {len(test_index)} digits; onnxruntime vs torch max diff "
          f"{np.abs(got - ref).max():.2e}")
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "digits.npz", images=images, labels=labels, train_index=train_index,
                        test_index=test_index)
    onnx.save(proto, OUT / "digits_cnn.onnx")


if __name__ == "__main__":
    main()
