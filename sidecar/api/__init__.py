"""The gRPC edge: the servicer, proto <-> model conversion, and the error -> status map."""
