// Package directory is certcenter's LDAP directory: it maps the store to a
// DIT and serves it read-only over ldap:// (with StartTLS) and ldaps://, so
// health information systems, relying parties and every standard client
// (ldapsearch, Apache Directory Studio, python-ldap, JNDI, NSS, Windows
// CryptoAPI) find certificates and CRLs. It reads the store directly and
// keeps only caches, so there is no second copy to drift.
//
// # Consistency
//
// The directory learns of commits through store.Watch (changes.go). On the
// committing goroutine it only drops the cached entries the change keys
// name — a changed subscriber, and the subscriber of a changed certificate
// that a cached entry holds — before the commit returns, and hands the
// change to its own goroutine, which reads the changed records and rebuilds
// what depends on them (the cn group a subscriber joins, the subscriber of a
// new certificate, new organisations and units, the CA entries with their
// CRLs). Every search and compare first waits until the changes committed
// before it arrived are applied (at most 2 s; then it is served from what
// is applied). So a client that revoked, issued, enrolled or wrote a CRL
// and then searched sees the change, and a revoked certificate of a cached
// entry is gone even if the directory's goroutine is late.
//
// # DIT
//
//	""                                        rootDSE (namingContexts, supportedControl, ...)
//	cn=Subschema                              subschema: every attribute type and object class served
//	<suffix>                                  e.g. o=certcenter,c=CN (ldap.suffix, default from the CA subject)
//	├─ cn=<CA common name>,<suffix>           top + cRLDistributionPoint + pkiCA + deltaCRL: cACertificate;binary,
//	│                                         certificateRevocationList;binary, authorityRevocationList;binary,
//	│                                         deltaRevocationList;binary (from the CRL blobs; absent until written)
//	├─ o=<organization>,<suffix>              organization (omitted when the suffix itself is o=<organization>)
//	│  └─ ou=<unit>,o=<organization>,<suffix> organizationalUnit
//	│     └─ cn=<cn>,ou=<unit>,...            subscriber: inetOrgPerson + pkiUser with cn, sn, uid, mail, o, ou,
//	│                                         serialNumber and userCertificate;binary (valid certificates; config
//	│                                         ldap.include_revoked / ldap.include_expired add the others;
//	│                                         ldap.hidden_attributes leaves out serialNumber by default)
//
// A subscriber's RDN is cn=<cn>. If an older subscriber in the same unit
// has the same cn, the newer one's RDN is cn=<cn>+uid=<uid>, so every DN is
// unique and a DN never changes when someone else is added.
//
// # Finding a certificate by issuer and serial
//
// certificateExactMatch (RFC 4523) on userCertificate or cACertificate, as
// an extensible match or an equality filter, in GSER or OpenLDAP's short form:
//
//	(userCertificate:certificateExactMatch:={ serialNumber 123, issuer rdnSequence:"cn=certcenter Demo Root CA,o=certcenter,c=CN" })
//	(userCertificate=123$cn=certcenter Demo Root CA,o=certcenter,c=CN)
//
// The serial is the store's primary key of certificates, so this is one
// point read, never a scan. Equality on cn, uid, mail and serialNumber uses
// the store's subscriber indexes; AND uses the first indexed term, OR the
// union when every term is indexed; other filters scan the subscribers
// under the base.
//
// # Serving
//
// One protocol stack serves every operation on the client's socket, so a
// connection costs one file descriptor. server.go owns the listeners and
// connections: connection limit, idle timeout, PDU size limit, in-flight
// requests per connection, TLS, and the hot path — search (search.go: plan,
// then execute) and compare answered from pre-encoded entries with one
// write per response. bind.go answers simple binds against ldap.accounts and directory accounts
// (bcrypt, bounded to the cores, off the reader; accounts found through
// the index of accounts.go), SASL EXTERNAL with the client certificate of
// the TLS handshake (external.go), WhoAmI, and refuses the
// writes (unwillingToPerform: the RA publishes the directory); an unknown
// extended operation gets protocolError. docs/ldap-stack.md says why there
// is no second LDAP server (gldap) behind the front end.
//
// # Access
//
// access.go decides, per entry, what the bound identity sees (SPEC Art.
// 14): the CA entries and their CRLs are public; people follow
// ldap.anonymous_people for anonymous clients, their approved
// organisations (by ID) for directory accounts (store.DirAccount, bound
// with a password or a client certificate; expired or revoked ones get
// invalidCredentials, and a connection bound as one loses it at its next
// operation),
// everything for service accounts; attributes outside
// ldap.public_attributes only for service accounts and accounts allowed
// all attributes. An entry out of access is answered as absent
// (noSuchObject, a matchedDN the client may see), never with an error
// that tells it exists.
package directory
