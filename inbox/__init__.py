"""The messaging domain: participants, conversations, messages, read state, away, permissions, outbox,
audit."""
