"""Functions of the trip_booking example: a travel agency's suppliers, simulated offline and deterministic."""

import hashlib


class PaymentDeclined(Exception):
    """The card was refused (non-retryable: a retry would be refused again)."""


def _ref(kind: str, trip_id: str) -> str:
    """A stable booking reference, so a retried reservation finds the same booking instead of making another."""
    return f"{kind[:3].upper()}-{hashlib.sha256(f'{kind}:{trip_id}'.encode()).hexdigest()[:8]}"


def reserve(kind: str, trip_id: str, detail: str) -> dict[str, str]:
    """Reserve a flight, a hotel room or a car for the trip and return its booking."""
    return {"kind": kind, "booking": _ref(kind, trip_id), "detail": detail, "status": "reserved"}


def cancel(kind: str, booking: str) -> dict[str, str]:
    """Cancel a booking (idempotent: cancelling twice is the same as once)."""
    return {"kind": kind, "booking": booking, "status": "cancelled"}


def charge(trip_id: str, amount: float, card_last4: str) -> dict[str, object]:
    """Charge the customer for the whole trip.

    Raises:
        PaymentDeclined: For the test card ending in 0002.
    """
    if card_last4 == "0002":
        raise PaymentDeclined(f"card ending in {card_last4} declined for {amount}")
    return {"charged": amount, "receipt": _ref("receipt", trip_id)}
