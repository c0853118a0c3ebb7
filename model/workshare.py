"""Short CPU tasks shared by the calling thread and one helper thread, torch single-threaded.

The fast tiling path's kernels (model/fast_tiling.py) are memory-bound and last about a
millisecond each: two threads that take tasks from one queue beat torch's OpenMP team on them,
and stay fast on a busy machine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

__all__ = ["exclusive", "share"]

_helper: ThreadPoolExecutor | None = None
# Held by whoever changes torch's thread count (see exclusive); share re-enters it.
_torch_threads = threading.RLock()


def _one_torch_thread() -> None:
    import torch

    torch.get_num_threads()  # torch's per-thread setup first: run later, it would undo the next line
    torch.set_num_threads(1)  # OpenMP's team size is per thread: this one's


def share(tasks: list[Callable[[], object]]) -> None:
    """Run `tasks` on this thread and the helper, each running torch on a single thread.

    Our kernels are memory-bound and last about a millisecond: torch's OpenMP team gains
    little on them and, on a busy machine, its spinning threads made them up to 10x slower.
    This thread works rather than waits: a helper slow to get a core just takes fewer tasks.
    The first task to raise stops the rest; no task outlives the call.
    """
    import torch

    global _helper
    with _torch_threads:
        if _helper is None:
            threads = torch.get_num_threads()
            _helper = ThreadPoolExecutor(1, "tile_image", initializer=_one_torch_thread)
            _helper.submit(int).result()
            torch.set_num_threads(threads)  # _one_torch_thread also set torch's default for new threads
        queue = iter(tasks)  # a list iterator hands each task to exactly one thread
        failed = threading.Event()
        # Inference mode is per thread: tensors made under the caller's must be written under it too.
        inference = torch.is_inference_mode_enabled()

        def work() -> None:
            for task in queue:
                if failed.is_set():
                    return
                try:
                    task()
                except BaseException:
                    failed.set()
                    raise

        def help_out() -> None:
            with torch.inference_mode(inference):
                work()

        helping = _helper.submit(help_out)
        # set_num_threads also sets torch's default for threads not yet started; holding the
        # lock, no other caller can read our temporary 1 as its value to restore.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            work()
        finally:
            torch.set_num_threads(threads)
            helper_error = helping.exception()  # waits: the helper stops at its next task
        if helper_error is not None:  # (an error of this thread's own has already propagated)
            raise helper_error


def exclusive() -> AbstractContextManager[object]:
    """The lock to hold around a series of `share` calls (and any state they use): while one
    caller holds it, no other can see torch's thread count at our temporary 1."""
    return _torch_threads


def _forget_helper() -> None:
    global _helper, _torch_threads
    _helper = None  # a forked child has none of its parent's threads, nor their locks
    _torch_threads = threading.RLock()


os.register_at_fork(after_in_child=_forget_helper)
