"""Outgoing email: SMTP sending (``mailer.smtp``), templates (``mailer.render``) and the development SMTP
sink (``mailer.devsink``). A leaf package: it knows nothing about conversations, the outbox or the gateway,
and no email it builds carries health information — only the practice name, a link and how long it works.
"""

from mailer.render import EmailRenderer, RenderedEmail
from mailer.smtp import Mailer, OutgoingEmail, SendOutcome, SmtpSettings

__all__ = ["EmailRenderer", "Mailer", "OutgoingEmail", "RenderedEmail", "SendOutcome", "SmtpSettings"]
