"""On the wire: credentials (Basic, OAuth), one HTTP attempt and its classification, and the rate limiters the
dispatcher takes its grants from. Nothing here calls back into delivery."""
