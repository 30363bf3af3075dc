"""The quantization front-end: quantizers, calibration observers, PTQ passes, QAT pieces.

One convention inside the code: the engines' ``q = round(r / S) + zero_point``,
``r = S * (q - zero_point)``.  The survey's Q(r) = Int(r/S) - Z is the same
mapping with Z = -zero_point.
"""
