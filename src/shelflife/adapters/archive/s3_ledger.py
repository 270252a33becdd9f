"""The key ledger on S3: a bucket that forgets what is overwritten or deleted.

Shredding rewrites a ledger object without the destroyed keys. In a bucket that keeps old
versions (versioning, which Object Lock always turns on) the old version would still hold
them, so `init` refuses such a bucket, and so does every write to the ledger: nothing is
archived or shredded through it.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from shelflife.adapters.archive.s3 import S3Archive
from shelflife.domain.errors import ArchiveUnavailable


class S3KeyLedger(S3Archive):
    """An S3 store for the key ledger: written without retention, in an unversioned bucket.

    Versioning can be switched on after `init`, so every write (a rewrite is how a shredded
    key leaves the ledger) checks first: one request per ledger object, not per buyer."""

    def ensure(self) -> None:
        super().ensure()
        self._refuse_versioning()

    def put(self, key: str, data: bytes) -> None:
        self._refuse_versioning()
        super().put(key, data)

    def _refuse_versioning(self) -> None:
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "checking", None) from None
        if status in ("Enabled", "Suspended"):
            raise ArchiveUnavailable(
                f"S3 bucket {self.bucket} keeps old versions of its objects (versioning "
                f"{status.lower()}), so a shredded key would survive in one; put the key ledger "
                "in a bucket that never had versioning or Object Lock"
            )
