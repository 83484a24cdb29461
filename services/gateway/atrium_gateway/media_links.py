"""Signed, time-limited download URLs for recordings in the local folder: what a presigned URL is
for a bucket. Pure: the time is passed in.

``GET /v1/Recordings/{Sid}/Media`` answers a redirect to one; the URL itself is the credential
(no Basic auth), as an S3 presigned URL is:

    /v1/Recordings/RT.../Media/file?account=AC...&expires=<unix seconds>&signature=<hex>

``signature`` is HMAC-SHA256, keyed with ``Settings.media_url_secret``, over the account SID, the
recording SID and ``expires``. The account is part of the URL because the replica that serves
the file asks the recording service for the recording as that account (so a deleted recording
stops downloading at once), and part of what is signed so that it cannot be swapped. Without a
configured secret each process draws a random one: a URL then works only on the replica that
issued it, so every gateway replica behind one address needs the same ``ATRIUM_MEDIA_URL_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from atrium_shared.errors import FORBIDDEN, AtriumError
from atrium_shared.settings import Settings

# How long a download URL works, as Twilio's media URLs (and the presigned ones asked for S3).
MEDIA_URL_TTL_SECONDS = 600


class MediaUrlRefused(AtriumError):
    """An expired, malformed or tampered URL: 403, as S3 answers for a presigned URL (its
    ``AccessDenied`` / ``SignatureDoesNotMatch``). A well-signed URL of a recording that is gone
    is a 404 instead, as S3's ``NoSuchKey``."""

    def __init__(self) -> None:
        super().__init__(FORBIDDEN, "The media URL is invalid or has expired", 403)


def media_url_secret(settings: Settings) -> bytes:
    """The configured secret, else a random one for this process."""
    if settings.media_url_secret is not None and settings.media_url_secret.get_secret_value():
        return settings.media_url_secret.get_secret_value().encode()
    return secrets.token_bytes(32)


class MediaUrlSigner:
    def __init__(self, secret: bytes, ttl_seconds: int = MEDIA_URL_TTL_SECONDS) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def signature(self, account_sid: str, recording_sid: str, expires: int) -> str:
        message = f"{account_sid}\n{recording_sid}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, base_url: str, account_sid: str, recording_sid: str, now: float) -> str:
        expires = int(now) + self.ttl_seconds
        query = urlencode(
            {
                "account": account_sid,
                "expires": str(expires),
                "signature": self.signature(account_sid, recording_sid, expires),
            }
        )
        return f"{base_url}/v1/Recordings/{recording_sid}/Media/file?{query}"

    def check(
        self,
        account_sid: str | None,
        recording_sid: str,
        expires: str | None,
        signature: str | None,
        now: float,
    ) -> str:
        """The account the URL was issued to; MediaUrlRefused unless it is well signed and
        unexpired."""
        if not (account_sid and signature and expires and expires.isascii() and expires.isdigit()):
            raise MediaUrlRefused()
        expected = self.signature(account_sid, recording_sid, int(expires))
        # Bytes: compare_digest refuses non-ASCII text, and a URL can carry any.
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise MediaUrlRefused()
        if int(expires) <= now:
            raise MediaUrlRefused()
        return account_sid
