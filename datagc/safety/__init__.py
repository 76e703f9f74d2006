"""Every primitive that touches the disk: the only package that unlinks or renames.

Rules (SPEC §7): everything is relative to directory file descriptors opened
from DATA_DIR's own descriptor; no symlink is ever followed (``O_NOFOLLOW``,
``follow_symlinks=False``); no directory on another filesystem than DATA_DIR's
is entered (``st_dev``); a file is re-checked against what was planned right
before it is unlinked; rewrites go through a temp file in the same directory
that is fsynced and renamed over the original, then the directory is fsynced.
"""
