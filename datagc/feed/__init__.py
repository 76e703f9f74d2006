"""What the feed says about the media files, and keeping it consistent when they go (SPEC §7 rule 6).

The feed files (``feed.files``, ``posts.json``) are JSON arrays of posts; each
post's ``feed.url_fields`` (``imageUrl``, ``videoUrl``) hold either a CDN URL
or a local URL of a media file (see ``datagc.cdn`` for how URLs name files).

- ``index_feeds`` reads every feed once into a ``FeedIndex``: per media file,
  the feed fields naming it by a local URL (as the ``FeedNull`` actions that
  would clear them) and the CDN URL the feed shows it by. A feed that is not
  JSON or not an array is listed in ``problems``; then nothing is known about
  any media file and callers keep them all.
- ``null_references`` sets to null every local reference to some files, in
  place: only the bytes of those string values change (formatting, key order,
  escapes and the trailing newline stay as they were), and the feed is
  replaced with ``replace_if_unchanged``; if the service rewrote it
  meanwhile, the change is redone on its new content, so none of its posts
  is lost.
"""
