// Package crl generates, stores and serves the certificate revocation lists
// of every CA: per CA a full CRL ("<ca>.crl"), a delta CRL against it
// ("<ca>-delta.crl"), an authority revocation list ("<ca>-arl.crl", the
// revoked CA certificates: empty while a CA issues no CA certificates) and,
// with crl.shards N > 1, a full and a delta CRL per shard
// ("<ca>-<k>.crl", "<ca>-<k>-delta.crl"). The names, the store keys, the
// shard rule and the scope each CRL states come from internal/crlscope,
// which ca (distribution points) and directory (attributes) share; the
// shard count comes from the CA (Authority.CRLLayout), so the builder and
// the certificates cannot disagree.
//
// Every CRL is encoded here, not by crypto/x509, because
// x509.CreateRevocationList has no issuing distribution point or delta CRL
// indicator and builds every entry as a Go value: a million entries would
// cost gigabytes. The TBSCertList is written with cryptobyte around entries
// that are streamed from the store's revocation index into fixed-size
// buffers, hashed, and signed through the CA's crypto.Signer (a file key or
// an HSM). Each CRL carries a CRL number and the authority key identifier.
// With shards, each also carries a critical issuing distribution point
// naming the URLs that certificates carry in their CRL distribution points,
// so a relying party uses a shard's CRL only for that shard's certificates
// (RFC 5280 §5.2.5, §6.3.3); the ARL always has one (onlyContainsCACerts).
// With one shard the complete CRL and its delta have none: NSS (libpkix)
// refuses a CRL with a critical IDP, and a CRL without one covers all of
// the CA's certificates, which is what the complete CRL lists. A delta CRL
// adds the critical delta CRL indicator naming its base and repeats the
// base's IDP or its absence (same scope, RFC 5280 §5.2.4). All CRLs of a CA take their
// numbers from one store sequence, "crl-<ca>", so numbers strictly increase,
// also across restarts, and a delta's number is above its base's.
//
// Storage is the contract with the directory and the publisher: the DER of
// each current CRL is the blob ("crl", file name) — exactly what HTTP
// serves — and its metadata (number, base number, thisUpdate, nextUpdate,
// delta window, entry count, SHA-256) is the blob ("crlmeta", file name),
// written in the same transaction. A full build stores the full CRLs, the
// ARL and the new deltas together, so the directory's
// certificateRevocationList, authorityRevocationList and deltaRevocationList
// change at once.
//
// When: Run rebuilds the full CRLs every crl.interval (nextUpdate
// crl.validity later) and a delta when half of crl.delta_validity has
// passed. Notify, called for every committed revocation, rebuilds within
// crl.delta_delay first the delta CRLs (milliseconds) and then the full
// CRLs (seconds at a million entries: every revocation is read again), so
// that clients that ignore delta CRLs — openssl without -use_deltas, the
// JDK, NSS — and the directory's certificateRevocationList see the
// revocation too. The pending set is a flag per CA, not a queue: a burst
// shares one rebuild, and what arrives during a rebuild shares the next
// one. Each full CRL's metadata holds a digest of the revocations in its
// delta window, read in the snapshot it was built from; a revocation
// committed after that snapshot changes the window, so the revocation
// record — written in the revocation's own transaction — is the durable
// dirty marker, and no separate one can be lost. Repair (at start-up, and
// on every schedule check) rebuilds what is missing, corrupt, expired, due,
// built for another shard count or IDP, dirty, or a delta that misses a
// revocation committed after it (a crash between a revocation's commit and
// its rebuild).
//
// Numbers: a batch's delta takes a number, then the full CRLs one and their
// new deltas the next, all from the CA's one sequence, so numbers rise in
// the order the CRLs are issued, every delta's BaseCRLNumber names a full
// CRL that was stored (in the same transaction, or before it), and a delta
// issued with a new full CRL lists the revocations of its window, which the
// full CRL also lists (allowed, RFC 5280 §5.2.4).
// A stored CRL is checked (recorded hash, structure, signature) before it is
// first served; one that fails is regenerated, never served.
//
// Limits: a certificate's shard is crlscope.Layout.ShardOf, fixed at issuance by
// the CDP written into it; changing crl.shards later leaves the CDPs of
// older certificates naming shards that no longer match (the full CRL
// "<ca>.crl" and the ldap URL stay right). Expired certificates stay on the
// CRL (RFC 5280 allows removing them; it is not done).
//
// # zlint
//
// The tests lint every CRL (full, delta, ARL, shards; every reason code) and
// a certificate of every profile in ca (ECDSA and RSA keys) with
// github.com/zmap/zlint/v3 and fail on any warning or error, except these
// lints, all CA/Browser Forum Baseline Requirements or browser root program
// rules for publicly trusted TLS, which do not bind this private PKI:
//
//	e_cab_crl_has_valid_reason_code   BR 7.2.2: reasons 1,3,4,5,9 only; RFC 5280 and the RA allow hold, cACompromise, aACompromise, unspecified
//	e_crl_extensions_validity         BR 7.2.2: no CRL extension beyond number, AKI, IDP; delta CRLs need the delta CRL indicator
//	e_ocsp_cert_cdp_forbidden         BR 7.1.2.8: the delegated OCSP responder certificate carries CDPs like every profile
//	e_crl_distrib_points_not_http     BR 7.1.2.11.2: the CDPs carry an ldap URL beside the http one, as the specification requires
//	e_server_cert_valid_time_longer_than_200_days, w_server_cert_valid_time_longer_than_199_days,
//	w_tls_server_cert_valid_time_longer_than_397_days   BR 6.3.2 / Apple: server-tls is valid 397 days
//	e_sub_cert_cert_policy_empty, e_sub_cert_certificate_policies_missing   BR 7.1.2.7.9: no BR policy OID in a private PKI
//	e_sub_cert_country_name_must_appear, e_sub_cert_locality_name_must_appear,
//	e_sub_cert_province_must_appear   BR 7.1.4.2: the subject is the RA's decision
//	w_ext_subject_key_identifier_not_recommended_subscriber   BR 7.1.2.7.6: RFC 5280 recommends the SKI
//	w_sub_cert_aia_contains_internal_names   BR 7.1.2.7.7: the tests' public URL is 127.0.0.1
//	w_subject_common_name_included    BR 7.1.4.3: the holder's name is in the CN
//
// It does not serve OCSP or the directory, and it does not push CRLs to
// external directories: nothing does yet (issue #13 builds that, from the
// "crl" blobs this package stores).
package crl
