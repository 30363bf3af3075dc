"""One module per op family; :data:`PREPARE` maps each IR op to the function that prepares it.

A prepare function takes (node, PrepareContext) and returns ``run(env, RunContext)``,
which reads its inputs from ``env`` (tensor name -> array) and stores its output there.
"""

from hwsim.sim.ops import dynamic, elementwise, linear, quant, structural

PREPARE = {
    "conv2d": linear.prepare_conv2d,
    "fully_connected": linear.prepare_fully_connected,
    "matmul": linear.prepare_matmul,
    "add": elementwise.prepare_binary,
    "sub": elementwise.prepare_binary,
    "mul": elementwise.prepare_binary,
    "mean": elementwise.prepare_mean,
    "avg_pool2d": elementwise.prepare_avg_pool2d,
    "softmax": elementwise.prepare_unary,
    "logistic": elementwise.prepare_unary,
    "tanh": elementwise.prepare_unary,
    "hard_swish": elementwise.prepare_unary,
    "leaky_relu": elementwise.prepare_unary,
    "max_pool2d": structural.prepare_max_pool2d,
    "reshape": structural.prepare_reshape,
    "transpose": structural.prepare_transpose,
    "concat": structural.prepare_concat,
    "pad": structural.prepare_pad,
    "relu": structural.prepare_relu,
    "clip": structural.prepare_clip,
    "quantize": quant.prepare_quantize,
    "dequantize": quant.prepare_dequantize,
    "requantize": quant.prepare_requantize,
    "dynamic_quantize": dynamic.prepare_dynamic_quantize,
    "cast": dynamic.prepare_cast,
}
