"""The agent updates itself: signed releases, install beside, switch, prove, commit or roll back.

Pure logic and I/O are kept apart (docs/update.md has the whole story):

- ``manifest.py`` (pure): the release manifest, its signature by the release key and
  the checks an offer must pass on this device (board, floor, rollout, state version);
- ``chunks.py`` (pure): whether a chunk of the artifact may be appended;
- ``machine.py`` (pure): the update's phases and their transitions;
- ``gate.py`` (pure): the health gate's verdict from what the trial shows;
- ``scrub.py`` (pure): secrets out of the log lines a failure report carries;
- ``journal.py`` (I/O): the update state on disk, fsync'd before each step runs;
- ``download.py`` (I/O): the partial artifact, resumable after a drop or a reboot;
- ``slots.py`` (I/O): versioned directories and the one ``current`` link swapped by rename;
- ``boot.py`` (processes): which tree a starting agent runs, and the trial guard that
  commits a new version or restores the previous one.
"""
