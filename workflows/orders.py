"""Functions of the order-processing example workflow."""

from typing import Any


def validate(order_id: str, amount: float, items: list[Any]) -> dict[str, Any]:
    """Check the order; invalid orders raise ValueError, which is not retried."""
    if not order_id:
        raise ValueError("order_id is empty")
    if amount < 0:
        raise ValueError("amount is negative")
    return {"order_id": order_id, "lines": len(items)}


def reserve(order_id: str, item: Any, line: int) -> dict[str, Any]:
    """Pretend to reserve one order line in a warehouse."""
    return {"order_id": order_id, "line": line, "item": item, "reserved": True}


def invoice(order_id: str, reservations: list[dict[str, Any]]) -> dict[str, Any]:
    """Pretend to create the invoice for the reserved lines."""
    return {"invoice_id": f"INV-{order_id}", "lines": len(reservations)}
