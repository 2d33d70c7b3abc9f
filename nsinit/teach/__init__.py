"""Teaching: ``nsinit explain``, ``nsinit inspect``, the trace timeline.

Never imported on the create or join path (tests/unit/test_startup_imports.py).
"""
