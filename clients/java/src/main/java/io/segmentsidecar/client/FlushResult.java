package io.segmentsidecar.client;

import java.util.List;

/**
 * What the sidecar did with the events it had accepted before a flush.
 *
 * @param delivered events delivered since the sidecar started
 * @param deadLettered events given up on since the sidecar started
 * @param parked accepted events waiting on a revoked or invalid write key (not waited for)
 * @param parkedWriteKeyHashes short hashes of those write keys
 */
public record FlushResult(long delivered, long deadLettered, long parked, List<String> parkedWriteKeyHashes) {}
