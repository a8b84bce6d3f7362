"""The project's wiring, the top layer: root URLs, the home page, the context processors of
every page, and the commands that drive several layers at once (``seed_demo``, ``run_job``).
It may import every layer below it; nothing imports it (DESIGN.md, README "Where things are")."""
