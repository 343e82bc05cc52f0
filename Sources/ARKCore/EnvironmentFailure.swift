// The errors of the environment, which say nothing about the entries being handled.

/// An error about the pipeline's environment (the state store locked by another writer, its
/// disk full), not about the entries being processed. A batch failing with one is retried
/// until it succeeds without counting against its entries' ARK_MAX_DELIVERIES: no entry is
/// poison because the disk filled up.
public protocol EnvironmentFailure: Error {}
