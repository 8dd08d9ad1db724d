"""Telegram glue: updates in, service calls, messages out. No SQL, no business rules."""
