"""Data quality of one column of current data, measured against the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ColumnQuality"]


@dataclass(frozen=True, slots=True)
class ColumnQuality:
    """Shares are of current rows (missing) or of current values present (the others)."""

    missing_share: float = 0.0  # null, NaN or infinite
    out_of_range_share: float = 0.0  # numeric: outside [reference min, reference max]
    unseen_share: float = 0.0  # categorical: a category the reference never had
    type_errors: int = 0  # values that did not have the column's type

    def problems(self) -> list[str]:
        """What is wrong, in words (empty when nothing is)."""
        found = []
        if self.type_errors:
            found.append(f"{self.type_errors} values of the wrong type")
        if self.missing_share:
            found.append(f"{self.missing_share:.1%} missing")
        if self.out_of_range_share:
            found.append(f"{self.out_of_range_share:.1%} outside the reference range")
        if self.unseen_share:
            found.append(f"{self.unseen_share:.1%} unseen categories")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_share": self.missing_share,
            "out_of_range_share": self.out_of_range_share,
            "unseen_share": self.unseen_share,
            "type_errors": self.type_errors,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnQuality:
        return cls(
            missing_share=float(data.get("missing_share") or 0.0),
            out_of_range_share=float(data.get("out_of_range_share") or 0.0),
            unseen_share=float(data.get("unseen_share") or 0.0),
            type_errors=int(data.get("type_errors") or 0),
        )
