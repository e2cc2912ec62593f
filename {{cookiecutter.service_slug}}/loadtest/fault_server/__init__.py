"""A fault-injecting stand-in for the service's downstream API.

Run it with ``python -m loadtest.fault_server`` (see ``__main__``) or, from
tests, with ``harness.serve_in_thread``; switch faults per route through the
admin API (``admin``) while requests are in flight.
"""
