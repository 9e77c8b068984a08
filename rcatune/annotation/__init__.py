"""Expert review in Label Studio: the server (server.py), its REST client, the two views (templates),
the push/sync loop, merging reviews into examples, and inter-annotator agreement. See docs/annotation.md."""
