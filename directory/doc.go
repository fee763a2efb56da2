// Package directory is certcenter's LDAP directory: it maps the store to a
// DIT and serves it read-only over ldap:// (with StartTLS) and ldaps://, so
// health information systems, relying parties and every standard client
// (ldapsearch, Apache Directory Studio, python-ldap, JNDI, NSS, Windows
// CryptoAPI) find certificates and CRLs. It reads the store directly and
// keeps only caches, invalidated by store.Watch before a commit returns, so
// there is no second copy to drift.
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
// The front end (server.go) owns the listeners and connections: connection
// limit, idle timeout, PDU size limit, in-flight requests per connection,
// TLS, and the hot path — search and compare answered from pre-encoded
// entries with one write per response — plus the operations gldap does not
// route (Compare, ModifyDN, Abandon, SASL binds). Simple binds, the write
// operations (unwillingToPerform: the RA publishes the directory) and the
// other extended operations are relayed to a github.com/jimlambrt/gldap
// server on a loopback port (backend.go); see that file for why.
package directory
