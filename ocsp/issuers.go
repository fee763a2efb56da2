package ocsp

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/sigalg"
)

// issuer is one CA as the responder sees it: the hashes a CertID names it
// by, in every algorithm we answer, and its delegated responder.
type issuer struct {
	name     string
	cert     *x509.Certificate
	nameHash [numHashes][]byte
	keyHash  [numHashes][]byte
	// resp is nil while the CA has no OCSP signing certificate.
	resp *responder
}

// issuerTable is immutable; the responder swaps in a new one when a CA or
// its responder certificate changes.
type issuerTable struct {
	list   []*issuer
	byName map[string]*issuer
}

func newIssuerTable(cas []*ca.Issuer, byKey bool) (*issuerTable, error) {
	t := &issuerTable{byName: make(map[string]*issuer, len(cas))}
	for _, c := range cas {
		iss := &issuer{name: c.Name, cert: c.Cert}
		// The key hash is over the subjectPublicKey bits, not the subject key
		// identifier extension (which a CA may compute any way it likes).
		bits, err := publicKeyBits(c.Cert)
		if err != nil {
			return nil, fmt.Errorf("CA %s: %w", c.Name, err)
		}
		for h := SHA1; h < numHashes; h++ {
			nh := h.Crypto().New()
			nh.Write(c.Cert.RawSubject)
			iss.nameHash[h] = nh.Sum(nil)
			kh := h.Crypto().New()
			kh.Write(bits)
			iss.keyHash[h] = kh.Sum(nil)
		}
		if c.OCSPCert != nil && c.OCSPSigner != nil {
			alg, err := sigalg.For(c.OCSPSigner.Public())
			if err != nil {
				return nil, fmt.Errorf("CA %s: responder key: %w", c.Name, err)
			}
			id, err := responderID(c.OCSPCert, byKey)
			if err != nil {
				return nil, fmt.Errorf("CA %s: responder ID: %w", c.Name, err)
			}
			iss.resp = &responder{cert: c.OCSPCert, signer: c.OCSPSigner, id: id, sigAlg: alg.DER, hash: alg.Hash}
		}
		t.list = append(t.list, iss)
		t.byName[c.Name] = iss
	}
	return t, nil
}

// match finds the issuer a CertID names, by name hash and key hash in the
// CertID's algorithm; nil if none.
func (t *issuerTable) match(id *CertID) *issuer {
	if id.Hash == HashUnknown {
		return nil
	}
	for _, iss := range t.list {
		if bytes.Equal(iss.keyHash[id.Hash], id.KeyHash) && bytes.Equal(iss.nameHash[id.Hash], id.NameHash) {
			return iss
		}
	}
	return nil
}
