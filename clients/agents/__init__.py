"""The on-chain roles' agents and what they share: the participant, the aggregator (and HE key
holder), phase keeping, the task ledger folded from events, the round replay, verification,
the task spec and model blobs, metrics, the participant's journal and keystore, the owner's
task publishing, and the long-running service loop."""
