"""gunicorn.conf.py's post_worker_init: the loaded application out of the collector's sight, and
young collections less often; garbage cycles made afterwards are still collected."""

import subprocess
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"

CHECK = """
import gc, os, runpy, weakref
conf = runpy.run_path({conf!r})
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
django.setup()
before = gc.get_freeze_count()
conf["post_worker_init"](None)
frozen = gc.get_freeze_count()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle, unreachable once the names go
gone = weakref.ref(a)
del a, b
gc.collect()
print(before, frozen, gc.get_threshold()[0], conf["GC_YOUNG_THRESHOLD"], gone() is None)
"""


def test_the_loaded_application_is_frozen_and_cycles_are_still_collected():
    completed = subprocess.run(
        [sys.executable, "-c", CHECK.format(conf=str(CONF))], capture_output=True, text=True, timeout=120,
        cwd=CONF.parent,
    )
    assert completed.returncode == 0, completed.stderr
    before, frozen, threshold, configured, collected = completed.stdout.split()
    assert int(before) == 0 and int(frozen) > 50_000  # Django and PGI's modules, classes and objects
    assert int(threshold) == int(configured) > 700
    assert collected == "True"
