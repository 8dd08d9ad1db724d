"""What a correction changes beyond the case row: a moved team's card loses its buttons."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import CaseCard

MOVED = "moved"  # a card purpose with no buttons: the case went to another team


def retire_cards(s: Session, case_id: int, chat_id: int, purpose: str) -> list[int]:
    """Mark the case's cards of `purpose` in a chat as moved; their chat ids."""
    rows = list(
        s.exec(
            select(CaseCard).where(
                CaseCard.case_id == case_id, CaseCard.chat_id == chat_id, col(CaseCard.purpose) == purpose
            )
        )
    )
    for row in rows:
        row.purpose = MOVED
        s.add(row)
    return [row.chat_id for row in rows]
