"""At-risk devices: signals from heartbeat patterns, rules and a learned model.

Pure parts (``signals``, ``features``, ``rules``, ``labels``, ``replay``) take time as an
argument like the liveness engine; ``scorer`` is the shell that scores the fleet on a
schedule in a worker thread. Method and measured figures: ``docs/prediction.md``.
"""
