"""Alerting: channels, rules, maintenance, flapping, storms, repeats and escalation.

Layout (pure core, thin shell):

* pure: ``levels`` (what a state means), ``core`` (transitions -> intents: hold,
  storms, flapping, silencing), ``routing``, ``schedule`` (windows, mutes, durations),
  ``followup`` (repeat/escalation timing), ``retry`` (delivery backoff), ``messages``;
* shell: ``models`` and ``repository`` (database), ``actions`` (intents -> rows and
  notifications), ``notifier`` (apprise), ``outbox`` (the delivery worker), ``shell``
  (wired into the monitor: ``Alerting``), ``cli``;
* ``api``: the async functions the CLI and the HTTP API call (ack, channels, rules,
  maintenance, mutes, listings).

This module imports nothing on purpose: ``monitor.store.models`` imports
``monitor.alerts.models`` to register the tables, and a heavy package ``__init__`` would
make that a circular import.
"""
