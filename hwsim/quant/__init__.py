"""The quantization front-end: quantizers, calibration observers, PTQ passes, QAT pieces.

One convention inside the code: the engines' ``q = round(r / S) + zero_point``,
``r = S * (q - zero_point)``.  The survey's Q(r) = Int(r/S) - Z is the same
mapping with Z = -zero_point.

* :mod:`hwsim.quant.params` -- QuantFormat, AffineParams, params_from_range (the shared vocabulary).
* :mod:`hwsim.quant.quantizers` -- uniform affine quantize / dequantize / fake_quantize, weight scales per
  tensor, channel, group (block) or channel group, and weights/biases into the IR (to_ir_weights, to_ir_bias).
* :mod:`hwsim.quant.nonuniform` -- power-of-two, k-means and binary-code codebooks (run through a target's
  lookup stage).
"""
