"""Functions of the order_processing_workflow example: a shop's services, simulated offline and deterministic."""

import hashlib
from typing import Any

PAYMENT_TYPES = ("credit_card", "debit_card", "paypal", "bank_transfer")
# Test card numbers, as payment providers publish them: this one is always declined.
DECLINED_LAST4 = "0002"
# A warehouse holds at most this many units of one product line per order.
MAX_UNITS_PER_LINE = 100


class InvalidOrder(ValueError):
    """The order can never be processed as sent (listed in non_retryable_errors: retrying cannot help)."""


class OutOfStock(Exception):
    """The warehouse cannot reserve the quantity asked for (non-retryable)."""


class PaymentDeclined(Exception):
    """The payment provider refused the charge (non-retryable: a retry would be refused again)."""


def validate(
    order_id: str, customer_id: str, order_amount: float, items: list[Any], payment_method: dict[str, Any]
) -> dict[str, Any]:
    """Check what the parameter types cannot: at least one well-formed item and a usable payment method.

    Raises:
        InvalidOrder: With every problem found, so the customer fixes them all at once.
    """
    problems: list[str] = []
    if not customer_id.strip():
        problems.append("customer_id is empty")
    if not items:
        problems.append("items is empty: an order needs at least one item")
    for line, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("product_id"), str) or not item["product_id"]:
            problems.append(f"items[{line}] needs a product_id")
            continue
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            problems.append(f"items[{line}].quantity must be a positive integer")
    kind = payment_method.get("type")
    if kind not in PAYMENT_TYPES:
        problems.append(f"payment_method.type must be one of {', '.join(PAYMENT_TYPES)}")
    last4 = str(payment_method.get("last4", ""))
    if kind in ("credit_card", "debit_card") and not (len(last4) == 4 and last4.isdigit()):
        problems.append("payment_method.last4 must be the card's last 4 digits")
    if problems:
        raise InvalidOrder(f"order {order_id} is invalid: " + "; ".join(problems))
    units = sum(int(item["quantity"]) for item in items)
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "amount": order_amount,
        "lines": len(items),
        "units": units,
    }


def reserve(order_id: str, product_id: str, quantity: int, line: int) -> dict[str, Any]:
    """Reserve one order line in the warehouse; the reservation id is derived from the order, so a retry is a no-op.

    Raises:
        OutOfStock: More units than the warehouse holds for one line.
    """
    if quantity > MAX_UNITS_PER_LINE:
        raise OutOfStock(f"{product_id}: {quantity} units asked, at most {MAX_UNITS_PER_LINE} in stock")
    return {"reservation_id": f"RSV-{order_id}-{line + 1}", "product_id": product_id, "quantity": quantity}


def fraud_check(
    customer_id: str, order_amount: float, payment_method: dict[str, Any], customer_email: str
) -> dict[str, Any]:
    """Score the order's fraud risk from 0 to 100 (a deterministic stand-in for a scoring service)."""
    score = 10
    if order_amount > 1000:
        score += 25
    if order_amount > 10000:
        score += 40
    if payment_method.get("type") == "bank_transfer":
        score -= 5
    if customer_email.lower().endswith((".invalid", ".test")):
        score += 30
    score = max(0, min(100, score))
    risk = "high" if score >= 70 else "medium" if score >= 30 else "low"
    return {"customer_id": customer_id, "score": score, "risk": risk}


def charge(order_id: str, order_amount: float, payment_method: dict[str, Any]) -> dict[str, Any]:
    """Charge the customer once: the transaction id derives from the order id (an idempotency key), so retries are safe.

    Raises:
        PaymentDeclined: The test card `last4: "0002"` is always declined.
    """
    if str(payment_method.get("last4", "")) == DECLINED_LAST4:
        raise PaymentDeclined(f"card ending {DECLINED_LAST4} was declined for order {order_id}")
    transaction = hashlib.sha256(f"charge:{order_id}".encode()).hexdigest()[:16]
    return {"transaction_id": f"TX-{transaction}", "amount": order_amount, "method": payment_method.get("type")}


def invoice(
    order_id: str, customer_id: str, items: list[dict[str, Any]], amount: float, transaction_id: str
) -> dict[str, Any]:
    """Create the invoice of a paid order."""
    return {
        "invoice_id": f"INV-{order_id}",
        "customer_id": customer_id,
        "lines": len(items),
        "total": amount,
        "transaction_id": transaction_id,
    }


def notify(email: str, phone: str, subject: str, invoice_id: str) -> dict[str, Any]:
    """Queue the confirmation e-mail and SMS (simulated: the example never leaves the machine)."""
    return {
        "email": {"to": email, "subject": subject, "attachment": f"{invoice_id}.pdf", "queued": True},
        "sms": {"to": phone, "text": f"{subject}. Invoice {invoice_id}.", "queued": True},
    }
