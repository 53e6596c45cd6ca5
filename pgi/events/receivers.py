"""Receivers of the domain signals that write the outbox (filled in by the events work)."""
