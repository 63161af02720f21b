package io.segmentsidecar.client;

import java.util.List;

/**
 * The outcome of one Batch call a {@link Batcher} made.
 *
 * @param messageIds the ids of the events sent, in order
 * @param results one per event when the call succeeded (rejected events carry their rejection), else null
 * @param error the whole call's failure after retries, else null
 */
public record BatchReport(List<String> messageIds, List<BatchResult> results, RuntimeException error) {}
