"""conversion: one module per mobile backend (ExecuTorch, Core ML, TFLite) behind one protocol.

The backends arrive with the QAT and backend-protocol work (issue 4 onwards); until then this package
holds no backend and `anyir export` does not exist.
"""
