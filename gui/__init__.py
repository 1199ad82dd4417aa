"""The hemocompat desktop app (PySide6 + pyqtgraph).

Models (``gui.models``) are plain Python and follow the ``instrument`` API; views
(``gui.views``, ``gui.widgets``) follow the models. Blocking work (connecting, runs,
loading and exporting stored runs) happens on worker threads (``gui.tasks``).
"""
