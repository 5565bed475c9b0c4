import atexit
import os
import shutil
import tempfile

# Tests never reach a model hub: everything they load is bundled or built in-process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tests never write into the user's cache (~/.cache/zerosearch or their ZEROSEARCH_CACHE): converted models, the
# mini-world and indexes built by the tests go to a temp dir of this session, inherited by the subprocesses.
TEST_CACHE = tempfile.mkdtemp(prefix="zerosearch-test-cache-")
os.environ["ZEROSEARCH_CACHE"] = TEST_CACHE
atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)
