"""Reads a run folder's TensorBoard event files with TensorBoard's own reader (which checks both CRCs of every
record) and prints every scalar series. Local check, not part of CI (CI has no tensorboard package):

    python3 -m venv /tmp/tbvenv && /tmp/tbvenv/bin/pip install tensorboard
    /tmp/tbvenv/bin/python scripts/check_tensorboard.py runs/demo/train-pc
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
if not tags:
    sys.exit(f"{sys.argv[1]}: no scalars found")
for tag in tags:
    events = acc.Scalars(tag)
    print(f"{tag}: {len(events)} points, first {events[0].step}:{events[0].value:.6g}, last {events[-1].step}:{events[-1].value:.6g}")
