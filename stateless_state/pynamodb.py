"""PynamoDB models in the library's transactions, and the library's conditions in yours.

Needs the ``pynamodb`` extra (``pip install 'stateless-state[pynamodb]'``); nothing else in the
library imports this module, so the core's cold start does not pay for PynamoDB.

Your model writes as ``TransactWriteItems`` entries, for any ``also=`` of the library (an
idempotency completion, a counter add with a token, a session add) or :meth:`Held.write
<stateless_state.lease.Held.write>`:

.. code-block:: python

    from stateless_state import pynamodb as ss_pynamodb

    claim.complete(result, also=[ss_pynamodb.save(Order(order_id, total=12))])
    counter.add(1, token=event_id, also=[ss_pynamodb.update(stock, [Stock.left.add(-1)])])

The library's conditions in your own PynamoDB ``TransactWrite``:

.. code-block:: python

    with TransactWrite(connection=Connection(region="eu-west-1")) as tw:
        ss_pynamodb.fence_check(tw, held)        # only while this lease holder is current
        ss_pynamodb.claim_check(tw, claim)       # only while this invocation owns its key
        tw.save(Order(order_id, total=12))

A model's ``VersionAttribute`` is checked and written exactly as PynamoDB's own transaction
does; the instance's local version is not bumped by a commit the library makes, so call
``model.update_local_version_attribute()`` after it if you keep using the instance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from .errors import InvalidArgument
from .idempotency import Claim
from .lease import Held

__all__ = ["check", "claim_check", "delete", "fence_check", "save", "update"]


def save(model: Model, *, condition: Condition | None = None) -> dict[str, Any]:
    """``model`` written whole (PynamoDB's ``save``), as a ``Put`` entry."""
    return {"Put": model.get_save_kwargs_from_instance(condition=condition)}


def update(
    model: Model, actions: Sequence[Action], *, condition: Condition | None = None
) -> dict[str, Any]:
    """PynamoDB update ``actions`` on ``model``'s item (``Stock.left.add(-1)``), as an
    ``Update`` entry."""
    if not actions:
        raise InvalidArgument("update() needs at least one action, e.g. Model.attribute.set(value)")
    return {
        "Update": model.get_update_kwargs_from_instance(actions=list(actions), condition=condition)
    }


def delete(model: Model, *, condition: Condition | None = None) -> dict[str, Any]:
    """``model``'s item deleted, as a ``Delete`` entry."""
    return {"Delete": model.get_delete_kwargs_from_instance(condition=condition)}


def check(
    model_cls: type[Model],
    hash_key: Any,
    range_key: Any = None,
    *,
    condition: Condition,
) -> dict[str, Any]:
    """A condition on one of your items that writes nothing, as a ``ConditionCheck`` entry."""
    return {
        "ConditionCheck": model_cls.get_operation_kwargs_from_class(
            hash_key, range_key=range_key, condition=condition
        )
    }


@functools.cache
def _state_item(table_name: str) -> Any:
    """A PynamoDB model of the state table's items, with the attributes the checks read
    (the layout :mod:`stateless_state.lease` and :mod:`stateless_state.idempotency`
    document), so the checks go through PynamoDB's public ``condition_check``."""
    meta = type("Meta", (), {"table_name": table_name})
    return type(
        "StateItem",
        (Model,),
        {
            "Meta": meta,
            "pk": UnicodeAttribute(hash_key=True),
            "sk": UnicodeAttribute(range_key=True),
            "fence": NumberAttribute(null=True),
            "owner": UnicodeAttribute(null=True),
            "status": UnicodeAttribute(null=True),
        },
    )


def fence_check(transaction: TransactWrite, held: Held) -> None:
    """Add to your ``TransactWrite`` the check that ``held``'s fence is still the lease's: the
    transaction is cancelled (``TransactWriteError``, nothing written) once another holder
    has acquired it."""
    claim = held.lease.claim
    item = _state_item(claim.table.name)
    transaction.condition_check(
        item, claim.key["pk"], claim.key["sk"], condition=item.fence == held.fence
    )


def claim_check(transaction: TransactWrite, claim: Claim) -> None:
    """Add to your ``TransactWrite`` the check that ``claim`` still owns its idempotency key
    (in progress under this invocation's token): an invocation that outlived its lease, whose
    key a retry took over, writes nothing. For exactly-once rather than at-most-once per
    claim, commit the writes with the completion: ``claim.complete(result, also=[...])``."""
    if claim.replay:
        raise InvalidArgument("a replayed claim owns nothing; check claims you are processing")
    item = _state_item(claim.table_name)
    key = claim.record_key
    transaction.condition_check(
        item,
        key["pk"],
        key["sk"],
        condition=(item.owner == claim.owner_token) & (item.status == "in_progress"),
    )
