"""Tokens for the links in emails and for portal sessions.

A token is random (``secrets.token_urlsafe``) and carries no meaning. The server stores only a keyed hash
of it (HMAC-SHA256 with the server secret), so a leaked database cannot be turned back into working links.
What a token is *for* — which participant, which purpose (notification link, Instant Sign In, session),
when it expires, whether it was used — is bound to the stored hash by the storage layer, not here.
"""

from portal_links.tokens import hash_token, link_for, new_token

__all__ = ["hash_token", "link_for", "new_token"]
