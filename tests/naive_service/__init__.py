"""A deliberately naive service that the load test must fail (never generated into a bake)."""
