"""The web page (``eloqua-import ui``): a thin layer over the library for people who know Excel
and Eloqua's web UI, not terminals or YAML. ``server`` serves ``static/`` and JSON routes over
``importer.infer``, ``importer.loader`` and the library API; ``security`` guards every request;
``jobs`` runs checks and imports as tasks of the server, so closing the tab stops nothing.
"""
