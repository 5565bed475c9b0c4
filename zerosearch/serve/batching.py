"""Dynamic batching: requests that arrive while the engine is busy are coalesced into its next call.

One worker owns the engine (a single thread: engines need not be thread-safe, and a GPU simulator runs
one batch at a time). A request is cut into pieces of at most `max_batch` queries, so that `max_batch` caps
every engine call. When the engine frees up, the worker takes waiting pieces up to `max_batch` queries,
optionally waiting `max_wait_ms` more for stragglers, and makes one engine call.

Failures stay with the request that caused them: a failed call holding several requests is retried in two
halves, and so on down to the request that fails (a few calls for one bad request, the others still batched);
a request fails with its first failed piece and its later pieces are dropped. No query that succeeded is
sent again: an engine that answers part of a call (`PartialResults`, the web engine) has those queries delivered
and only the others retried. `timeout_s` bounds a batch from its first engine call to its last retry
(see docs/serving.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zerosearch.engines.base import Document, PartialResults, SearchEngine, SearchRequest

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More queries are waiting than the server accepts; the client should retry later."""


class WorkerDown(Exception):
    """The batching worker is not running; nothing would answer the request."""


class EngineTimeout(Exception):
    """The engine did not answer a batch within the deadline."""


class _Job:
    """One HTTP request's queries; its future resolves when every piece has answered, or at the first failure."""

    def __init__(self, requests: list[SearchRequest], future: asyncio.Future):
        self.requests, self.future = requests, future
        self.results: list[list[Document] | None] = [None] * len(requests)
        self.left = len(requests)

    def deliver(self, start: int, results: list[list[Document]]) -> None:
        if self.future.done():
            return
        self.results[start : start + len(results)] = results
        self.left -= len(results)
        if self.left == 0:
            self.future.set_result(self.results)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass
class _Piece:
    job: _Job
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def requests(self) -> list[SearchRequest]:
        return self.job.requests[self.start : self.end]


class Batcher:
    def __init__(
        self,
        engine: SearchEngine,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 16384,
        timeout_s: float | None = None,
    ):
        self.engine, self.max_batch, self.max_wait_s, self.max_queue = engine, max_batch, max_wait_ms / 1000, max_queue
        self.timeout_s = timeout_s or None  # 0: no deadline
        self.pending = 0  # queries queued or running
        self.batch_sizes: Counter[int] = Counter()  # queries per engine call -> number of calls
        self.counts: Counter[str] = Counter()  # failed calls, retries, timeouts
        self._queue: asyncio.Queue[_Piece] = asyncio.Queue()
        self._carry: _Piece | None = None  # a piece that did not fit in the previous batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._running: asyncio.Future | None = None  # the engine call in the executor, and its batch's deadline
        self._running_deadline: float | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stuck(self) -> bool:
        """An engine call has outrun the deadline (it cannot be interrupted; later batches wait for it)."""
        if self._running_deadline is None or self._running is None or self._running.done():
            return False
        return asyncio.get_running_loop().time() >= self._running_deadline

    async def search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        if not requests:
            return []
        if not self.alive:
            raise WorkerDown
        if self.pending + len(requests) > self.max_queue:
            raise QueueFull
        self.pending += len(requests)
        try:
            job = _Job(requests, asyncio.get_running_loop().create_future())
            for start in range(0, len(requests), self.max_batch):
                self._queue.put_nowait(_Piece(job, start, min(len(requests), start + self.max_batch)))
            return await job.future
        finally:
            self.pending -= len(requests)

    async def _next(self, timeout: float | None) -> _Piece | None:
        """The next waiting piece; None if none comes within `timeout` seconds (None: wait as long as it takes)."""
        if self._carry:
            piece, self._carry = self._carry, None
            return piece
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:  # before Python 3.11 this is not the builtin TimeoutError
            return None

    async def _collect(self, batch: list[_Piece]) -> None:
        loop = asyncio.get_running_loop()
        batch.append(await self._next(None))
        size = batch[0].size
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch:
            piece = await self._next(deadline - loop.time())
            if piece is None:
                break
            if size + piece.size > self.max_batch:
                self._carry = piece
                break
            batch.append(piece)
            size += piece.size

    async def _run(self) -> None:
        while True:
            batch: list[_Piece] = []
            try:
                await self._collect(batch)
                loop = asyncio.get_running_loop()
                await self._attempt(batch, None if self.timeout_s is None else loop.time() + self.timeout_s)
            except Exception as e:  # the worker must outlive any failure, or every later request waits forever
                log.exception("batching worker: batch failed")
                for piece in batch:
                    piece.job.fail(e)

    async def _attempt(self, pieces: list[_Piece], deadline: float | None) -> None:
        pieces = [p for p in pieces if not p.job.future.done()]  # requests already failed, clients that gave up
        if not pieces:
            return
        try:
            results = await self._call([r for p in pieces for r in p.requests], deadline)
        except EngineTimeout as e:  # no retry: it would wait as long again
            for p in pieces:
                p.job.fail(e)
            return
        except PartialResults as e:
            if not any(docs is not None for docs in e.results):
                await self._split(pieces, e, deadline)
                return
            # Keep what was answered (a paid web query is not sent twice); retry only the queries that failed.
            self.counts["failed_calls"] += 1
            self.counts["retries"] += 1
            await self._attempt(self._deliver(pieces, e.results), deadline)
            return
        except Exception as e:
            await self._split(pieces, e, deadline)
            return
        self._deliver(pieces, results)

    def _deliver(self, pieces: list[_Piece], results: list[list[Document] | None]) -> list[_Piece]:
        """Hand each answered query to its request; the one-query pieces of those that were not answered."""
        if len(results) != sum(p.size for p in pieces):
            raise RuntimeError(f"engine returned {len(results)} results for {sum(p.size for p in pieces)} queries")
        unanswered, offset = [], 0
        for p in pieces:
            for i in range(p.size):
                docs = results[offset + i]
                if docs is None:
                    unanswered.append(_Piece(p.job, p.start + i, p.start + i + 1))
                else:
                    p.job.deliver(p.start + i, [docs])
            offset += p.size
        return unanswered

    async def _split(self, pieces: list[_Piece], error: Exception, deadline: float | None) -> None:
        self.counts["failed_calls"] += 1
        jobs = list({id(p.job): p.job for p in pieces}.values())
        if len(jobs) == 1:  # the request's handler logs the error
            jobs[0].fail(error)
            return
        # One bad request must not fail the requests batched with it: retry each half, down to the bad one.
        self.counts["retries"] += 2
        first = {id(job) for job in jobs[: len(jobs) // 2]}
        await self._attempt([p for p in pieces if id(p.job) in first], deadline)
        await self._attempt([p for p in pieces if id(p.job) not in first], deadline)

    async def _call(self, requests: list[SearchRequest], deadline: float | None) -> list[list[Document]]:
        loop = asyncio.get_running_loop()
        if self._running is not None and not self._running.done():  # a call that outran its deadline holds the engine
            await asyncio.wait([self._running], timeout=None if deadline is None else max(0.0, deadline - loop.time()))
        if not (self._running is None or self._running.done()) or (deadline is not None and loop.time() >= deadline):
            self.counts["timeouts"] += 1
            raise EngineTimeout(f"the engine did not answer within {self.timeout_s} s")
        self.batch_sizes[len(requests)] += 1
        self._running_deadline = deadline
        self._running = call = loop.run_in_executor(self._executor, self.engine.search, requests)
        call.add_done_callback(lambda f: f.cancelled() or f.exception())  # an abandoned call's error is not news
        if deadline is None:
            results = await call
        else:
            try:
                results = await asyncio.wait_for(asyncio.shield(call), deadline - loop.time())
            except asyncio.TimeoutError:
                self.counts["timeouts"] += 1
                raise EngineTimeout(f"the engine did not answer within {self.timeout_s} s") from None
        if len(results) != len(requests):
            raise RuntimeError(f"engine returned {len(results)} results for {len(requests)} queries")
        return results
