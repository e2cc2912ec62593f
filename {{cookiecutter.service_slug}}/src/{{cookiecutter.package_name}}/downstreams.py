"""The downstreams this service calls: declare each one here, once.

A declaration is all the wiring a downstream needs. Its settings come from the environment
(``<PREFIX>_DOWNSTREAMS__<NAME>__...``; ``BASE_URL`` is required outside development), and its
client, ``/debug/downstreams`` entry, metrics and load-test faults follow from the name.
Routes take the alias as a parameter: ``async def get_stock(sku: str, inventory: Inventory)``.
After adding one, ``make env-files`` lists its variables in ``.env.example`` (and the k8s env).
"""

from typing import Annotated

from .downstream.client import Downstream
from .downstream.declarations import Declarations

declared = Declarations()

Catalog = Annotated[Downstream, declared.add("catalog")]
Pricing = Annotated[Downstream, declared.add("pricing")]
