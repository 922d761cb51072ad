"""Fetching recordings from Twilio and keeping them, with retries that survive restarts.

The queue lives in Postgres (``recording_fetches``), so a fetch that failed is taken up
again by whichever process runs next, even after a restart. A recording whose status
callback never came is queued anyway once it is old enough.

The far end is not trusted with more than it must be: media URLs are built from the
recording's SID, the configured ``TWILIO_ACCOUNT_SID`` and ``TWILIO_API_BASE_URL``
(https) — nothing of a webhook's but the checked RecordingSid — so no request can point
the fetcher, or our credentials, elsewhere. Redirects are never followed (a 3xx fails
the attempt, retried like a 5xx); only an ``audio/*`` body is kept, and only up to
``RECORDING_MAX_BYTES``, read in chunks and cut off beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import structlog

from ivr.identifiers import RECORDING_SID
from storage.ledger import chained
from storage.recordings import (
    Fetch,
    MediaStore,
    claim_due,
    enqueue_unannounced,
    fetch_failed,
    is_audio_type,
    keep_media,
    next_due,
)

__all__ = ["FetchPolicy", "RecordingFetcher"]

log = structlog.get_logger(__name__)

CLAIM_BATCH = 5
# While a process fetches, the row is leased to it; if it dies, the lease runs out and
# another process takes the row up again.
LEASE_S = 120.0
IDLE_POLL_S = 30.0  # at most this long between looks at the queue, and sweeps for lost callbacks
MAX_BACKOFF_S = 3600.0
PERMANENT_STATUSES = frozenset({400, 401, 403})  # retrying cannot fix a refusal
CHUNK_BYTES = 64 * 1024


class FetchError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class FetchPolicy:
    """How long to wait for Twilio, how often to retry, when to look for lost callbacks."""

    def __init__(
        self, timeout_s: float, retry_base_s: float, max_attempts: int, callback_grace_s: float, max_bytes: int
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.callback_grace_s = callback_grace_s
        self.poll_s = min(IDLE_POLL_S, callback_grace_s)

    def retry_at(self, attempts: int, now: datetime) -> datetime | None:
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=min(self.retry_base_s * 3 ** (attempts - 1), MAX_BACKOFF_S))


class RecordingFetcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        http: aiohttp.ClientSession,
        store: MediaStore,
        policy: FetchPolicy,
        *,
        api_base_url: str,
        auth: tuple[str | None, str],
    ) -> None:
        self._pool, self._http, self._store, self._policy = pool, http, store, policy
        self._api_base_url = api_base_url.rstrip("/")
        self._account_sid, self._auth_token = auth
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A recording was announced: look at the queue now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Work the queue until cancelled; storage outages (anything, really) are waited out, not fatal.

        Without TWILIO_ACCOUNT_SID there is no URL to fetch from: the queue is left for a
        process that has one (nothing is lost, nothing is fetched with a webhook's account).
        """
        if self._account_sid is None:
            # A warning, not an error: a laptop in dev mode has no account, and loses nothing.
            log.warning(
                "recording_fetch_not_configured",
                missing="TWILIO_ACCOUNT_SID",
                effect="recordings wait in the fetch queue until a process with it fetches them",
            )
            return
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_sweep >= self._policy.poll_s:
                    await self._sweep()
                    last_sweep = loop.time()
                worked = await self.work_once()
                pause = 0.0 if worked else await self._until_next_due()
            except Exception:  # a background worker must outlive any one failure
                log.exception("recording_queue_unavailable")
                pause = self._policy.poll_s
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                self._wake.clear()

    async def work_once(self) -> int:
        """Attempt every due fetch once; how many were attempted."""
        async with self._pool.acquire() as conn:
            due = await claim_due(conn, CLAIM_BATCH, LEASE_S)
        await asyncio.gather(*(self._attempt(fetch) for fetch in due))
        return len(due)

    async def _until_next_due(self) -> float:
        async with self._pool.acquire() as conn:
            due = await next_due(conn)
        if due is None:
            return self._policy.poll_s
        return max(0.0, min(self._policy.poll_s, (due - datetime.now(UTC)).total_seconds()))

    async def _sweep(self) -> None:
        async with self._pool.acquire() as conn:
            added = await enqueue_unannounced(conn, self._policy.callback_grace_s)
        if added:
            log.warning("recording_callbacks_missing", queued=added)

    async def _attempt(self, fetch: Fetch) -> None:
        try:
            media, content_type = await self._download(fetch)
        except FetchError as exc:
            retry_at = None if exc.permanent else self._policy.retry_at(fetch.attempts, datetime.now(UTC))
            async with self._pool.acquire() as conn:
                await fetch_failed(conn, fetch, str(exc), retry_at)
            log.warning("recording_fetch_failed", recording=fetch.recording_sid, error=str(exc), retry=bool(retry_at))
            return
        async with self._pool.acquire() as conn, chained(conn) as chain:
            digest = await keep_media(chain, self._store, fetch, media, content_type)
        log.info("recording_kept", recording=fetch.recording_sid, size=len(media), sha256=digest[:12])

    async def _download(self, fetch: Fetch) -> tuple[bytes, str]:
        account_sid = self._account_sid  # ours, never the one a webhook (or a call's row) named
        if account_sid is None:
            raise FetchError("TWILIO_ACCOUNT_SID is not configured")
        if not RECORDING_SID.match(fetch.recording_sid):
            raise FetchError("not a RecordingSid: never fetched", permanent=True)
        url = f"{self._api_base_url}/2010-04-01/Accounts/{account_sid}/Recordings/{fetch.recording_sid}.wav"
        authorization = aiohttp.encode_basic_auth(account_sid, self._auth_token)
        try:
            async with self._http.get(
                url,
                headers={"Authorization": authorization},
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
                allow_redirects=False,  # a redirect would carry our credentials wherever it points
            ) as resp:
                return await self._audio_of(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"{type(exc).__name__} fetching the media") from exc

    async def _audio_of(self, resp: aiohttp.ClientResponse) -> tuple[bytes, str]:
        """The body, if it is what a recording is: audio, within RECORDING_MAX_BYTES."""
        if 300 <= resp.status < 400:
            raise FetchError(f"HTTP {resp.status} from Twilio: a redirect, not followed")
        if resp.status != 200:
            raise FetchError(f"HTTP {resp.status} from Twilio", permanent=resp.status in PERMANENT_STATUSES)
        if not is_audio_type(resp.content_type):  # kept, it is later played to staff as what it says it is
            raise FetchError(f"content type {resp.content_type[:80]!r} is not audio: not kept")
        limit = self._policy.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchError(f"{resp.content_length} bytes announced, over RECORDING_MAX_BYTES ({limit}): not kept")
        media = bytearray()
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            media += chunk
            if len(media) > limit:
                raise FetchError(f"more than RECORDING_MAX_BYTES ({limit}) bytes: cut off, not kept")
        return bytes(media), resp.content_type
