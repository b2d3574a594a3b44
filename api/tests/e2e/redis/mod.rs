//! Redis other than the machine's single server: Sentinel with a failover, a Cluster, a frozen
//! Redis, and a change of the stream's shard count. The servers are the test's own
//! (`testkit::redis`).

mod cluster;
mod flows;
mod outage;
mod sentinel;
mod stream_shards;
