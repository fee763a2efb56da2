// Package publish pushes CA certificates, CRLs and subscriber certificates
// to outside LDAP directories ("targets"), such as the health information
// systems' directories that the publishing policy names.
//
// It owns the delivery: one worker per target follows the store's change
// log (store/changelog.go) from its own cursor, coalesces a batch by
// record, writes the newest state of each record with
// github.com/go-ldap/ldap/v3, and advances the cursor only after the whole
// batch was written or, record by record, refused (see below). It keeps
// per-target state in memory (connected, last success, last error,
// pending, delivered) and in the store (failed records, pause, resync
// request and report) for diagnostics and metrics. It
// does not decide what changed (ca and crl write the log in the change's own
// transaction) and does not serve anything.
//
// # Why a retry never duplicates a value
//
// Every write sets an attribute to its complete, current value set: a CA
// entry's cACertificate;binary is the CA certificate, its
// certificateRevocationList;binary is the newest stored CRL, a subscriber
// entry's userCertificate;binary is every publishable certificate of that
// entry read from the store now. Writes are LDAP Modify Replace (or an Add
// of a missing entry with those values), never Modify Add of one value. A
// replace of a set with the same set is a no-op, so delivering a batch a
// second time — after a crash between the write and the cursor's advance,
// or after a timeout whose write did land — leaves the target exactly as
// one delivery would. This is also why a change superseded before delivery
// (a newer CRL, a revocation after an issuance) is delivered once, as its
// newest state: the log names the record, the worker reads the record.
//
// # Ordering and failure
//
// Entries are delivered in log order per target. Failures come in two
// kinds. A failure of the target as a whole — unreachable, bind refused,
// busy, a timeout — fails the batch: it is retried after an exponential
// backoff with jitter (1s doubling to publish.max_backoff) and the cursor
// stays where it was. A record the target refuses by itself — a DN the
// mapping cannot build from the subject, an objectClassViolation or
// invalidAttributeSyntax, a parent that cannot be created — does not hold
// the others: it is written to the store's failed set for the target
// (namespace "publish-failed", "<target>/<record key>", with the DN, the
// error, the number of tries and the next retry) in the transaction that
// advances the cursor past it, and retried on its own backoff once the log
// is drained. It leaves the set when a retry or a later change to it is
// written, or when the target no longer wants it. A failing target holds
// up only itself: workers share nothing but the store, read it in short
// read-only transactions, and an unreachable target at start-up is retried
// by its worker while the server runs.
//
// A new target (no cursor) registers at the log's head and first delivers
// the whole current state (every CA, its CRLs, every publishable
// certificate); a marker written with the cursor's first advance records
// that this was done, so a crash during it repeats it.
//
// Resync compares instead of trusting (resync.go): it reads the target's
// base_dn subtree back with a paged search (each page streamed with
// SearchAsync; the target is never held in memory whole), compares every
// entry carrying a certificate or CRL with the store's expected state (a
// hash per value), re-delivers the records of entries that are missing or
// differ, and takes out of other entries the certificates certcenter
// issued that they should not carry (revoked or expired per
// remove_revoked, or mapped elsewhere), leaving values it did not issue.
// The certificates it found absent are recorded per target
// ("publish-check") for diagnostics, and its counts in the target's
// LastResync. The request is durable until the resync finishes.
package publish
