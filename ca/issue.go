package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// ErrBadRequest marks an issuance request the caller must fix (bad CSR, weak
// key, unknown profile); the API maps it to 400.
var ErrBadRequest = errors.New("bad certificate request")

// InitOptions describe the root CA that Init creates.
type InitOptions struct {
	Name         string
	CommonName   string
	Organization string
	Country      string
	Algorithm    signer.Algorithm
	Validity     time.Duration
}

// Init creates a root CA and its delegated OCSP responder, stores them and
// loads them. Keys are generated in the signer under "<name>-ca" and
// "<name>-ocsp-<n>".
func (a *Authority) Init(ctx context.Context, o InitOptions) (*Issuer, error) {
	if _, err := a.Issuer(o.Name); err == nil {
		return nil, fmt.Errorf("CA %s exists already", o.Name)
	}
	if err := a.store.View(ctx, func(tx *store.Tx) error {
		_, err := tx.CA(o.Name)
		return err
	}); err == nil {
		return nil, fmt.Errorf("CA %s exists already in the store", o.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	keyRef := o.Name + "-ca"
	key, err := a.opts.Signers.Generate(ctx, keyRef, o.Algorithm)
	if errors.Is(err, signer.ErrKeyExists) {
		// No CA record names this key (Issuer failed above), so it is what
		// an init that crashed before storing the CA left behind: reuse it
		// rather than fail every later start.
		key, err = a.opts.Signers.Signer(ctx, keyRef)
		if err == nil {
			if got, aerr := signer.AlgorithmOf(key.Public()); aerr != nil || got != o.Algorithm {
				err = fmt.Errorf("key %s left by an interrupted init is %s, not %s: remove it", keyRef, got, o.Algorithm)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := a.now().UTC()
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	if o.Country != "" {
		subject.Country = []string{o.Country}
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	iss := &Issuer{Name: o.Name, Cert: cert, Signer: key}
	rec := &store.CA{Name: o.Name, CertDER: der, KeyRef: keyRef, CreatedAt: now}
	if err := a.store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutCA(rec); err != nil {
			return err
		}
		// Publishing targets and replicas learn of the new CA certificate
		// from the change log, written with the record or not at all.
		return tx.AppendLog(store.LogEntry{Kind: store.LogCACert, Key: o.Name, Time: now})
	}); err != nil {
		return nil, fmt.Errorf("storing CA %s: %w", o.Name, err)
	}
	a.mu.Lock()
	a.issuers[o.Name] = iss
	a.mu.Unlock()
	if _, err := a.RenewOCSPResponder(ctx, o.Name); err != nil {
		return nil, err
	}
	return a.Issuer(o.Name)
}

// RenewOCSPResponder makes a new delegated OCSP signing key and certificate
// for a CA and makes it current. The OCSP responder calls it before the
// current certificate expires.
func (a *Authority) RenewOCSPResponder(ctx context.Context, name string) (*Issuer, error) {
	iss, err := a.Issuer(name)
	if err != nil {
		return nil, err
	}
	alg, err := signer.AlgorithmOf(iss.Cert.PublicKey)
	if err != nil {
		return nil, err
	}
	// A sequence keeps two renewals within one second (or an interrupted
	// one's leftover key) from colliding.
	seq, err := a.store.Next("ocsp-key-" + name)
	if err != nil {
		return nil, err
	}
	keyRef := fmt.Sprintf("%s-ocsp-%d-%d", name, a.now().Unix(), seq)
	key, err := a.opts.Signers.Generate(ctx, keyRef, alg)
	if err != nil {
		return nil, fmt.Errorf("generating OCSP signing key: %w", err)
	}
	c, err := a.Issue(ctx, IssueRequest{
		CA:        name,
		Profile:   ProfileOCSPSigning,
		PublicKey: key.Public(),
		Subject:   &pkix.Name{CommonName: iss.Cert.Subject.CommonName + " OCSP Responder", Organization: iss.Cert.Subject.Organization, Country: iss.Cert.Subject.Country},
	})
	if err != nil {
		return nil, fmt.Errorf("issuing OCSP signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, err
	}
	err = a.store.Update(ctx, func(tx *store.Tx) error {
		rec, err := tx.CA(name)
		if err != nil {
			return err
		}
		rec.OCSPCertDER, rec.OCSPKeyRef = c.DER, keyRef
		return tx.PutCA(rec)
	})
	if err != nil {
		return nil, fmt.Errorf("storing OCSP responder of %s: %w", name, err)
	}
	a.mu.Lock()
	next := *a.issuers[name]
	next.OCSPCert, next.OCSPSigner = cert, key
	a.issuers[name] = &next
	a.mu.Unlock()
	return &next, nil
}

// IssueRequest asks for one certificate. Exactly one of CSR and PublicKey is
// set: a CSR from outside (its signature and key are checked), or a public
// key from a trusted caller (seeding, the CA's own service certificates).
type IssueRequest struct {
	CA      string // empty: the default CA
	Profile string
	CSR     *x509.CertificateRequest
	// PublicKey is used when CSR is nil.
	PublicKey crypto.PublicKey
	// Subject overrides the CSR's subject (the RA decides the subject after review).
	Subject *pkix.Name
	// DNSNames, IPAddresses and EmailAddresses override the CSR's.
	DNSNames       []string
	IPAddresses    []net.IP
	EmailAddresses []string
	SubscriberID   string
	// NotAfter shortens the profile's validity when set.
	NotAfter time.Time
	// Serial, when set, is the certificate's serial (1 to 20 bytes, a
	// positive number): a caller that records it before asking can find
	// the certificate after a lost answer instead of asking twice. A serial
	// in use is refused at commit. Empty: a fresh NewSerial.
	Serial []byte
}

// Issue signs and stores one certificate, then emits EventIssued.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (*store.Cert, error) {
	out, err := a.IssueBatch(ctx, []IssueRequest{req})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// IssueBatch signs several certificates and stores them in one transaction:
// all or none. Events follow the commit.
func (a *Authority) IssueBatch(ctx context.Context, reqs []IssueRequest) ([]*store.Cert, error) {
	return a.IssueBatchWith(ctx, reqs, nil)
}

// IssueBatchWith is IssueBatch with also, when not nil, run inside the
// issuing transaction with the new certificates, so a caller's own records
// (the subscribers seeded with them, a request's state) commit together
// with the certificates or not at all.
func (a *Authority) IssueBatchWith(ctx context.Context, reqs []IssueRequest, also func(tx *store.Tx, certs []*store.Cert) error) ([]*store.Cert, error) {
	certs := make([]*store.Cert, 0, len(reqs))
	for i := range reqs {
		c, err := a.sign(&reqs[i])
		if err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("request %d: %w", i, err)
			}
			return nil, err
		}
		certs = append(certs, c)
	}
	if err := a.store.Update(ctx, func(tx *store.Tx) error {
		at := a.now()
		for _, c := range certs {
			if err := tx.InsertCert(c); err != nil {
				return err
			}
			if err := tx.AppendLog(store.LogEntry{Kind: store.LogCertIssued, Key: c.SerialHex(), Time: at}); err != nil {
				return err
			}
		}
		if also != nil {
			return also(tx, certs)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("storing issued certificates: %w", err)
	}
	evs := make([]Event, len(certs))
	for i, c := range certs {
		evs[i] = Event{Kind: EventIssued, Cert: c}
		a.log.Info("issued", "serial", c.SerialHex(), "issuer", c.Issuer, "profile", c.Profile, "subject", c.Subject)
	}
	a.emit(ctx, evs...)
	return certs, nil
}

func (a *Authority) sign(req *IssueRequest) (*store.Cert, error) {
	iss, err := a.issuerFor(req.CA)
	if err != nil {
		return nil, err
	}
	prof, err := LookupProfile(req.Profile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	tmpl := &x509.Certificate{}
	pub := req.PublicKey
	if req.CSR != nil {
		if err := CheckCSR(req.CSR); err != nil {
			return nil, err
		}
		pub = req.CSR.PublicKey
		tmpl.Subject = req.CSR.Subject
		tmpl.DNSNames = req.CSR.DNSNames
		tmpl.IPAddresses = req.CSR.IPAddresses
		tmpl.EmailAddresses = req.CSR.EmailAddresses
	} else if pub == nil {
		return nil, fmt.Errorf("%w: neither a CSR nor a public key", ErrBadRequest)
	} else if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	if req.Subject != nil {
		tmpl.Subject = *req.Subject
	}
	if req.DNSNames != nil {
		tmpl.DNSNames = req.DNSNames
	}
	if req.IPAddresses != nil {
		tmpl.IPAddresses = req.IPAddresses
	}
	if req.EmailAddresses != nil {
		tmpl.EmailAddresses = req.EmailAddresses
	}
	if tmpl.Subject.CommonName == "" && len(tmpl.DNSNames) == 0 {
		return nil, fmt.Errorf("%w: the subject has no common name", ErrBadRequest)
	}
	if prof.RequireSAN && len(tmpl.DNSNames) == 0 && len(tmpl.IPAddresses) == 0 {
		return nil, fmt.Errorf("%w: profile %s needs a DNS name or IP address", ErrBadRequest, prof.Name)
	}
	now := a.now().UTC().Truncate(time.Second)
	serial := req.Serial
	if len(serial) == 0 {
		if serial, err = NewSerial(); err != nil {
			return nil, err
		}
	} else if len(serial) > 20 || serial[0] == 0 || serial[0]&0x80 != 0 {
		return nil, fmt.Errorf("%w: serial %x is not a positive number of 1 to 20 bytes without leading zeros", ErrBadRequest, serial)
	}
	tmpl.SerialNumber = new(big.Int).SetBytes(serial)
	tmpl.NotBefore = now.Add(-time.Minute)
	tmpl.NotAfter = now.Add(prof.Validity)
	if !req.NotAfter.IsZero() && req.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = req.NotAfter.UTC()
	}
	if tmpl.NotAfter.After(iss.Cert.NotAfter) {
		tmpl.NotAfter = iss.Cert.NotAfter
	}
	// Certificates encode whole seconds; the stored record must say the same.
	tmpl.NotAfter = tmpl.NotAfter.UTC().Truncate(time.Second)
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("%w: notAfter %s is not in the future", ErrBadRequest, tmpl.NotAfter.Format(time.RFC3339))
	}
	tmpl.KeyUsage = prof.KeyUsage
	if _, isRSA := pub.(*rsa.PublicKey); isRSA && prof.KeyUsageRSA != 0 {
		tmpl.KeyUsage = prof.KeyUsageRSA
	}
	tmpl.ExtKeyUsage = prof.ExtKeyUsage
	tmpl.BasicConstraintsValid = true
	spki, err := marshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if tmpl.SubjectKeyId, err = keyIDOf(spki); err != nil {
		return nil, err
	}
	urls := a.URLsFor(iss, serial)
	tmpl.OCSPServer = []string{urls.OCSP}
	tmpl.IssuingCertificateURL = []string{urls.CAIssuers}
	tmpl.CRLDistributionPoints = []string{urls.CRL, urls.LDAPCRL}
	fresh, err := freshestCRL(urls.DeltaCRL, urls.LDAPDelta)
	if err != nil {
		return nil, fmt.Errorf("encoding freshest CRL extension: %w", err)
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, fresh)
	if prof.OCSPNoCheck {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidOCSPNoCheck, Value: asn1.NullBytes})
	}
	der, err := createLeaf(rand.Reader, tmpl, iss.Cert, pub, spki, iss.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return &store.Cert{
		Serial:       serial,
		Issuer:       iss.Name,
		DER:          der,
		Status:       store.StatusValid,
		Subject:      tmpl.Subject.String(),
		CommonName:   tmpl.Subject.CommonName,
		SubscriberID: req.SubscriberID,
		Profile:      prof.Name,
		NotBefore:    tmpl.NotBefore,
		NotAfter:     tmpl.NotAfter,
		IssuedAt:     now,
		UpdatedAt:    now,
	}, nil
}

func (a *Authority) issuerFor(name string) (*Issuer, error) {
	if name == "" {
		return a.Default()
	}
	return a.Issuer(name)
}

// NewSerial returns 20 random bytes with the top bit clear, so the serial is a
// positive INTEGER of exactly 20 octets (RFC 5280 §4.1.2.2; CA/B Forum: at
// least 64 bits of entropy).
func NewSerial() ([]byte, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("reading random serial: %w", err)
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 1
	}
	return b, nil
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := marshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return keyIDOf(spki)
}

// marshalPublicKey is pub's SubjectPublicKeyInfo; a key it cannot encode is
// the requester's to fix.
func marshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding public key: %w", ErrBadRequest, err)
	}
	return spki, nil
}

// keyIDOf is subjectKeyID of an encoded SubjectPublicKeyInfo.
func keyIDOf(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	h := sha1.Sum(info.PublicKey.Bytes)
	return h[:], nil
}

// ParseCSR parses a DER or PEM-decoded CSR and checks it.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing CSR: %w", ErrBadRequest, err)
	}
	if err := CheckCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// CheckCSR verifies the CSR's self-signature and its key.
func CheckCSR(csr *x509.CertificateRequest) error {
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: CSR signature does not verify: %w", ErrBadRequest, err)
	}
	return CheckPublicKey(csr.PublicKey)
}

// CheckPublicKey accepts RSA 2048-8192 bits with exponent 65537 and ECDSA on
// P-256 or P-384; everything else is refused with the reason.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("%w: RSA key of %d bits (want 2048 to 8192)", ErrBadRequest, n)
		}
		if k.E != 65537 {
			return fmt.Errorf("%w: RSA public exponent %d (want 65537)", ErrBadRequest, k.E)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrBadRequest, k.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("%w: key type %T is not supported (want RSA or ECDSA)", ErrBadRequest, pub)
}
