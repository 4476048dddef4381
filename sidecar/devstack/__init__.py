"""Local stand-ins started by the demo and the tests: an OpenBao dev server."""
