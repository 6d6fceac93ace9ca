"""Functions of the `sample` data processing pipeline: extract, aggregate and score records, all in memory."""

from typing import Any


def extract(records: list[Any]) -> dict[str, Any]:
    """Keep the well-formed records (a region, a product and a non-negative amount), normalised; count the rest."""
    rows: list[dict[str, Any]] = []
    rejected = 0
    for record in records:
        amount = record.get("amount") if isinstance(record, dict) else None
        if (
            not isinstance(record, dict)
            or not str(record.get("region", "")).strip()
            or not str(record.get("product", "")).strip()
            or isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or amount < 0
        ):
            rejected += 1
            continue
        rows.append(
            {
                "region": str(record["region"]).strip().lower(),
                "product": str(record["product"]).strip(),
                "amount": float(amount),
            }
        )
    return {"rows": rows, "rejected": rejected}


def totals_by(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Sum the amounts per value of `key` (e.g. per region), sorted by that value."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row[key]] = round(totals.get(row[key], 0.0) + row["amount"], 2)
    return dict(sorted(totals.items()))


def score(row: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Flag one row whose amount is above the threshold (one call per row: the fan-out of the pipeline)."""
    return {**row, "flagged": row["amount"] > threshold}
