"""Parley's exporter: a Hugging Face gpt-oss checkpoint becomes a verified ONNX model folder.

Heavy dependencies (torch, onnx) are imported by the modules that need them, so
`parley --help` works on a runtime-only install.
"""
