"""`parley bench`: Parley against onnxruntime-genai and transformers on one gpt-oss checkpoint (main.py).

Shipped in the package beside the exporter it needs (torch, to make and export checkpoints). Each
benchmarked system runs in a process of its own (system_*.py over worker.py); onnxruntime-genai's in a
virtual environment of its own (peers.py), where only worker.py and system_genai.py, run by path, are used.
"""
