"""The harness, one module or package per plugin kind: what the host does around a plugin's narrow
method (evaluation, sweeps, run-level analyses, sanity checks). ``contracts/`` keeps the
abstract bases and the invariants checked on every call."""
