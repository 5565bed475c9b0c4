"""Dynamic batching: requests that arrive while the engine is busy are coalesced into its next call.

One worker owns the engine (a single thread: engines need not be thread-safe, and a GPU simulator runs
one batch at a time). When the engine frees up, the worker takes every waiting request up to `max_batch`
queries, optionally waiting `max_wait_ms` more for stragglers, and makes one engine call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zerosearch.engines.base import Document, SearchEngine, SearchRequest

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More queries are waiting than the server accepts; the client should retry later."""


@dataclass
class _Job:
    requests: list[SearchRequest]
    future: asyncio.Future


class Batcher:
    def __init__(self, engine: SearchEngine, *, max_batch: int = 64, max_wait_ms: float = 0.0, max_queue: int = 4096):
        self.engine, self.max_batch, self.max_wait_s, self.max_queue = engine, max_batch, max_wait_ms / 1000, max_queue
        self.pending = 0  # queries queued or running
        self.batch_sizes: Counter[int] = Counter()  # queries per engine call -> number of calls
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._carry: _Job | None = None  # a job that did not fit in the previous batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        if self.pending + len(requests) > self.max_queue:
            raise QueueFull
        self.pending += len(requests)
        try:
            job = _Job(requests, asyncio.get_running_loop().create_future())
            self._queue.put_nowait(job)
            return await job.future
        finally:
            self.pending -= len(requests)

    async def _next_job(self, timeout: float | None) -> _Job | None:
        if self._carry:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0 or not self._queue.empty():
            return None if self._queue.empty() else self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._next_job(None)]
            size = len(batch[0].requests)
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:
                job = await self._next_job(deadline - loop.time())
                if job is None:
                    break
                if size + len(job.requests) > self.max_batch:
                    self._carry = job
                    break
                batch.append(job)
                size += len(job.requests)
            try:
                await self._execute(batch)
            except Exception:  # the worker must outlive any failure, or the server stops answering
                log.exception("batch failed")

    async def _execute(self, batch: list[_Job]) -> None:
        batch = [job for job in batch if not job.future.done()]  # clients that gave up
        if not batch:
            return
        loop = asyncio.get_running_loop()
        flat = [r for job in batch for r in job.requests]
        self.batch_sizes[len(flat)] += 1
        try:
            results = await loop.run_in_executor(self._executor, self.engine.search, flat)
            if len(results) != len(flat):
                raise RuntimeError(f"engine returned {len(results)} results for {len(flat)} queries")
        except Exception as e:
            if len(batch) == 1:
                _settle(batch[0].future, error=e)
                return
            # One bad request must not fail the requests batched with it: run them one by one.
            for job in batch:
                await self._execute([job])
            return
        start = 0
        for job in batch:
            _settle(job.future, results[start : start + len(job.requests)])
            start += len(job.requests)


def _settle(future: asyncio.Future, result=None, error: Exception | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
