"""Secure protocols on secret shares. One module per family; each module holds, for every
protocol: the secure function ``f(rt, ...)``, its plaintext reference ``reference_f``,
and its declared cost ``cost_f(...) -> mpc.cost.Cost``.

Conventions every protocol follows:

* It runs on all three parties with the same call. P0 (``rt.is_dealer``) receives
  phantom shares (shape, no data), builds the correlations (``rt.random_shared``,
  ``rt.dealer_shared``, ``rt.private_random``, ``rt.deal``) and returns phantoms; P1/P2
  draw the same seeded values in the same order and ``rt.take`` the corrections.
* Everything a party sends in one round goes in one ``rt.exchange`` / ``rt.send``.
* Inputs are checked (domains, shapes, table sizes) before any message is sent, with
  ``mpc.ring.DomainMismatch`` / ``mpc.shares.ShapeMismatch`` / ``ValueError``.
"""
