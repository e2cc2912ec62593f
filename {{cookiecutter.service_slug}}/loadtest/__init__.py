"""Load-test tooling: the fault-injecting downstream (``fault_server``) the tests drive."""
