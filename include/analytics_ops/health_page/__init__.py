"""The "Analytics health" page in the Airflow UI (plugins/analytics_health.py mounts it).

* ``asgi.health_app`` - what the plugin mounts: builds the real FastAPI app (``app.create_app``)
  on its first request, so importing the plugin in the scheduler, triggerer or a task costs
  nothing beyond this small module.
* ``queries.collect_health(conn, now=None)`` - all page data as a dict (also the JSON endpoint).
* ``render.render_page(data)`` - the server-rendered HTML (inline CSS and SVG sparklines).
"""
