import subprocess
import sys
import textwrap

import pytest

# In a process of its own: the test depends on the allocator's state, which the test process's earlier tests set.
SCRIPT = textwrap.dedent(
    """
    from pathlib import Path

    import torch

    from zerosearch.memory import release_freed_memory

    def rss_mib():
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024

    first = torch.ones(16 << 20, dtype=torch.uint8)
    del first  # a large free: glibc now serves blocks below 16 MiB from its heap
    blocks = [torch.ones(4 << 20, dtype=torch.uint8) for _ in range(100)]
    del blocks[:-1]  # the last block stays, so that the heap's top cannot shrink by itself
    before = rss_mib()
    release_freed_memory()
    print(before, rss_mib())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, Linux's /proc")
def test_memory_freed_by_a_stage_goes_back_to_the_os():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    before, after = map(float, out.split())
    assert before - after > 300  # MiB: ~396 MiB of freed blocks were still resident
