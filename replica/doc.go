// Package replica is the read-replica role: a primary publishes its change
// log to a NATS JetStream stream, and replicas on other machines follow the
// stream into their own Badger store and serve OCSP, CRLs, CA certificates
// and the LDAP directory read-only from it, without a CA private key.
//
// The pieces:
//
//   - Publisher (primary): follows the store's change log from its cursor
//     ("replica"), resolves each entry to the records it names
//     (store.Tx.ReplicaRecords) and appends one message per entry to the
//     stream after the entry's commit, in log order, with the entry's
//     sequence as Nats-Msg-Id (deduplicated) and the stream's expected last
//     sequence (so a failed publish is never overtaken by a later one). At
//     start it repairs from the stream: an entry published before a crash
//     but after which the cursor was not saved is not published again.
//   - Snapshotter (primary): stores the store's backup stream in a
//     JetStream object store on a schedule, with the change-log position
//     it covers.
//   - Follower (replica): bootstraps an empty store from the snapshot, then
//     consumes the stream through a durable consumer from the first message
//     after its applied sequence, applying each message idempotently
//     (store.Tx.ApplyReplicated, the applied sequence in the same
//     transaction). Every message carries the sequence of the message
//     published before it; a replica that finds a message whose predecessor
//     it has not applied has fallen behind the stream's retention (or the
//     stream was lost) and re-bootstraps by itself.
//   - Embedded: a NATS server with JetStream inside the process, forming a
//     cluster with the other machines' from configured routes.
//
// It does not serve anything itself: server/wire_replica.go builds the
// ocsp, crl and directory packages in their read-only modes over the
// replica's store.
package replica
