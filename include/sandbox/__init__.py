"""Local stand-ins for the upstream APIs (PostHog Query API, inventory analytics, GitHub REST) and
a deterministic sample-data generator, for the demo, the tests and the benchmarks.

See ``include/sandbox/README.md``. Entry points: ``python -m include.sandbox serve|load|ladder``,
``include.sandbox.server.SandboxProcess``, ``include.sandbox.generator.load_sample_data``.
"""
