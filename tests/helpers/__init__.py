"""Helpers shared by the tests: import them as ``from helpers.<module> import ...``.

One package (not ``conftest.py``, which pytest imports by itself and tests should not import):
``images`` makes labelled picture folders, ``torch_threads`` holds the one-thread fixture,
``reference`` the published parameter and MAC counts, ``finetune``, ``lab`` and ``export`` the
tiny configs and models of those rooms.
"""
