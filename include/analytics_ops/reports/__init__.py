"""The weekly jobs (``analytics_weekly``): metrics CSV export, the CTO report (HTML + charts,
emailed), retention/archiving and the all-project health check.

Modules: ``window`` (the reporting week), ``export`` (CSV), ``report`` (data + Jinja rendering),
``charts`` (matplotlib PNGs), ``email`` (MIME + SMTP), ``retention`` (archive then delete),
``health`` (project statuses + alerts). The sample rows and the screenshot tool live in
``include/sandbox``. Heavy libraries (pandas, matplotlib) are imported inside functions.
"""
