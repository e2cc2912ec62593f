"""Load-test tooling: ``python -m loadtest`` (the pool-exhaustion suite, see ``__main__``) and the
fault-injecting downstream it drives (``fault_server``, also used by the tests)."""
