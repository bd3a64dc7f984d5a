"""Deployable copies of a kta model: ONNX (float and static int8 QDQ) and TensorRT, with the
checks an engineer runs before shipping one (parity against torch, latency side by side)."""
