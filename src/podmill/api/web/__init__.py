"""The viewer: the web pages a person uses, served by the API's own app.

Pages live at ``/`` (the library) and under ``/view/`` (episode, search, digest,
operations, jobs), with ``/login`` and ``/logout``; the API keeps its paths. They are
server-rendered Jinja2 templates (``templates/``) with a little plain JavaScript and CSS
(``static/``, served at ``/static/``); no build step. A page shows exactly what the API
shows its tenant: it calls the same :class:`~podmill.platform.Platform` methods with the
tenant of the browser's session (``session.py``). docs/viewer.md is the tour.
"""
