"""Functions of the human_approval_workflow example (expense approval)."""

import uuid


def check(employee: str, amount: float) -> dict[str, object]:
    """Refuse obviously invalid expenses (ValueError is listed as non-retryable)."""
    if not employee.strip():
        raise ValueError("an expense needs an employee")
    if amount <= 0:
        raise ValueError("an expense needs a positive amount")
    return {"employee": employee, "amount": amount}


def book(employee: str, amount: float, approved_by: list[str]) -> dict[str, object]:
    """Pretend to book the expense in the ledger and return the booking."""
    return {"booking_id": uuid.uuid4().hex[:12], "employee": employee, "amount": amount, "approved_by": approved_by}
