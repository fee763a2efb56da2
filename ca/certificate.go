package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
	"unicode"

	"github.com/certcenter/certcenter/internal/sigalg"
)

// createLeaf encodes and signs an end-entity certificate the way
// x509.CreateCertificate does, byte for byte (TestCreateLeafMatchesX509), for
// the fields sign sets: subject, SANs (DNS, e-mail, IP), validity, key usage,
// extended key usage, basic constraints (not a CA), key identifiers, AIA, CRL
// distribution points and extra extensions.
//
// It exists for one difference. x509.CreateCertificate verifies every
// signature it makes, to catch a crypto.Signer that misbehaves; for an
// ECDSA P-256 key the verification costs more than the signature (about a
// sixth of a million-certificate seed's CPU). Go's own software keys need
// no such check (crypto/rsa already checks its CRT result against fault
// attacks), so createLeaf verifies only when the signer is something else: a
// PKCS#11 token, whose answer crosses a boundary and whose mechanism could be
// misconfigured.
//
// spki is pub's SubjectPublicKeyInfo, which sign has encoded already for the
// subject key identifier.
func createLeaf(random io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, spki []byte, key crypto.Signer) ([]byte, error) {
	if tmpl.IsCA || len(tmpl.URIs) > 0 || len(tmpl.Policies) > 0 || len(tmpl.PolicyIdentifiers) > 0 ||
		len(tmpl.UnknownExtKeyUsage) > 0 || tmpl.SignatureAlgorithm != x509.UnknownSignatureAlgorithm ||
		len(tmpl.PermittedDNSDomains) > 0 || len(tmpl.ExcludedDNSDomains) > 0 ||
		len(tmpl.PermittedIPRanges) > 0 || len(tmpl.ExcludedIPRanges) > 0 ||
		len(tmpl.PermittedEmailAddresses) > 0 || len(tmpl.ExcludedEmailAddresses) > 0 ||
		len(tmpl.PermittedURIDomains) > 0 || len(tmpl.ExcludedURIDomains) > 0 {
		// Not a leaf of ours: let crypto/x509 encode what createLeaf does not.
		return x509.CreateCertificate(random, tmpl, parent, pub, key)
	}
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() <= 0 {
		return nil, errors.New("certificate serial number must be positive")
	}
	alg, err := sigalg.For(key.Public())
	if err != nil {
		return nil, fmt.Errorf("the issuer's key: %w", err)
	}
	if eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || (parent.PublicKey != nil && !eq.Equal(parent.PublicKey)) {
		return nil, errors.New("the issuer's signer does not hold the key of the issuer's certificate")
	}
	subject := tmpl.RawSubject
	if len(subject) == 0 {
		if subject, err = asn1.Marshal(tmpl.Subject.ToRDNSequence()); err != nil {
			return nil, fmt.Errorf("encoding subject: %w", err)
		}
	}
	issuer := parent.RawSubject
	if len(issuer) == 0 {
		if issuer, err = asn1.Marshal(parent.Subject.ToRDNSequence()); err != nil {
			return nil, fmt.Errorf("encoding issuer: %w", err)
		}
	}
	aki := tmpl.AuthorityKeyId
	if !bytes.Equal(issuer, subject) && len(parent.SubjectKeyId) > 0 {
		aki = parent.SubjectKeyId
	}
	exts, err := leafExtensions(tmpl, bytes.Equal(subject, []byte{0x30, 0}), aki)
	if err != nil {
		return nil, err
	}
	tbs, err := asn1.Marshal(tbsCertificate{
		Version:            2,
		SerialNumber:       tmpl.SerialNumber,
		SignatureAlgorithm: asn1.RawValue{FullBytes: alg.DER},
		Issuer:             asn1.RawValue{FullBytes: issuer},
		Validity:           validity{tmpl.NotBefore.UTC(), tmpl.NotAfter.UTC()},
		Subject:            asn1.RawValue{FullBytes: subject},
		PublicKey:          asn1.RawValue{FullBytes: spki},
		Extensions:         exts,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding certificate: %w", err)
	}
	h := alg.Hash.New()
	h.Write(tbs)
	digest := h.Sum(nil)
	sig, err := key.Sign(random, digest, alg.Hash)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	if !softwareKey(key) {
		if err := alg.Verify(key.Public(), digest, sig); err != nil {
			return nil, fmt.Errorf("the signer's signature does not verify: %w", err)
		}
	}
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, asn1.RawValue{FullBytes: alg.DER}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		return nil, fmt.Errorf("encoding certificate: %w", err)
	}
	return der, nil
}

type tbsCertificate struct {
	Version            int `asn1:"optional,explicit,default:0,tag:0"`
	SerialNumber       *big.Int
	SignatureAlgorithm asn1.RawValue
	Issuer             asn1.RawValue
	Validity           validity
	Subject            asn1.RawValue
	PublicKey          asn1.RawValue
	Extensions         []pkix.Extension `asn1:"omitempty,optional,explicit,tag:3"`
}

type validity struct{ NotBefore, NotAfter time.Time }

// softwareKey reports whether key is one of Go's own private keys.
func softwareKey(key crypto.Signer) bool {
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return true
	}
	return false
}

var (
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtendedKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtAuthorityInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDistribution  = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAccessOCSP          = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAccessCAIssuers     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
	extKeyUsageOIDs        = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
		x509.ExtKeyUsageAny:             {2, 5, 29, 37, 0},
		x509.ExtKeyUsageServerAuth:      {1, 3, 6, 1, 5, 5, 7, 3, 1},
		x509.ExtKeyUsageClientAuth:      {1, 3, 6, 1, 5, 5, 7, 3, 2},
		x509.ExtKeyUsageCodeSigning:     {1, 3, 6, 1, 5, 5, 7, 3, 3},
		x509.ExtKeyUsageEmailProtection: {1, 3, 6, 1, 5, 5, 7, 3, 4},
		x509.ExtKeyUsageTimeStamping:    {1, 3, 6, 1, 5, 5, 7, 3, 8},
		x509.ExtKeyUsageOCSPSigning:     {1, 3, 6, 1, 5, 5, 7, 3, 9},
	}
)

// leafExtensions lists the extensions in crypto/x509's order, each skipped
// when ExtraExtensions carries its own, ExtraExtensions last.
func leafExtensions(tmpl *x509.Certificate, subjectEmpty bool, aki []byte) ([]pkix.Extension, error) {
	exts := make([]pkix.Extension, 0, 8+len(tmpl.ExtraExtensions))
	add := func(id asn1.ObjectIdentifier, critical bool, value any) error {
		for _, e := range tmpl.ExtraExtensions {
			if e.Id.Equal(id) {
				return nil
			}
		}
		der, err := asn1.Marshal(value)
		if err != nil {
			return fmt.Errorf("encoding extension %s: %w", id, err)
		}
		exts = append(exts, pkix.Extension{Id: id, Critical: critical, Value: der})
		return nil
	}
	if tmpl.KeyUsage != 0 {
		bits := []byte{reverseBits(byte(tmpl.KeyUsage)), reverseBits(byte(tmpl.KeyUsage >> 8))}
		if bits[1] == 0 {
			bits = bits[:1]
		}
		if err := add(oidExtKeyUsage, true, asn1.BitString{Bytes: bits, BitLength: bitLength(bits)}); err != nil {
			return nil, err
		}
	}
	if len(tmpl.ExtKeyUsage) > 0 {
		oids := make([]asn1.ObjectIdentifier, len(tmpl.ExtKeyUsage))
		for i, u := range tmpl.ExtKeyUsage {
			oid, ok := extKeyUsageOIDs[u]
			if !ok {
				return nil, fmt.Errorf("extended key usage %d has no OID here", u)
			}
			oids[i] = oid
		}
		if err := add(oidExtExtendedKeyUsage, false, oids); err != nil {
			return nil, err
		}
	}
	if tmpl.BasicConstraintsValid {
		if tmpl.MaxPathLen > 0 || tmpl.MaxPathLen < -1 || tmpl.MaxPathLenZero {
			return nil, errors.New("only CAs may have a path length")
		}
		// cA FALSE and no path length: both DEFAULT, so an empty SEQUENCE.
		if err := add(oidExtBasicConstraints, true, asn1.RawValue{FullBytes: []byte{0x30, 0}}); err != nil {
			return nil, err
		}
	}
	if len(tmpl.SubjectKeyId) > 0 {
		if err := add(oidExtSubjectKeyID, false, tmpl.SubjectKeyId); err != nil {
			return nil, err
		}
	}
	if len(aki) > 0 {
		if err := add(oidExtAuthorityKeyID, false, struct {
			ID []byte `asn1:"optional,tag:0"`
		}{aki}); err != nil {
			return nil, err
		}
	}
	if len(tmpl.OCSPServer) > 0 || len(tmpl.IssuingCertificateURL) > 0 {
		type accessDescription struct {
			Method   asn1.ObjectIdentifier
			Location asn1.RawValue
		}
		var aia []accessDescription
		for _, u := range tmpl.OCSPServer {
			aia = append(aia, accessDescription{oidAccessOCSP, uriName(u)})
		}
		for _, u := range tmpl.IssuingCertificateURL {
			aia = append(aia, accessDescription{oidAccessCAIssuers, uriName(u)})
		}
		if err := add(oidExtAuthorityInfo, false, aia); err != nil {
			return nil, err
		}
	}
	if len(tmpl.DNSNames) > 0 || len(tmpl.EmailAddresses) > 0 || len(tmpl.IPAddresses) > 0 {
		var names []asn1.RawValue
		for _, n := range tmpl.DNSNames {
			if err := ia5(n); err != nil {
				return nil, err
			}
			names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(n)})
		}
		for _, n := range tmpl.EmailAddresses {
			if err := ia5(n); err != nil {
				return nil, err
			}
			names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(n)})
		}
		for _, ip := range tmpl.IPAddresses {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: ip})
		}
		// RFC 5280 §4.2.1.6: with an empty subject the names are the identity.
		if err := add(oidExtSubjectAltName, subjectEmpty, names); err != nil {
			return nil, err
		}
	}
	if len(tmpl.CRLDistributionPoints) > 0 {
		type distributionPoint struct {
			Name struct {
				FullName []asn1.RawValue `asn1:"optional,tag:0"`
			} `asn1:"optional,tag:0"`
		}
		dps := make([]distributionPoint, len(tmpl.CRLDistributionPoints))
		for i, u := range tmpl.CRLDistributionPoints {
			dps[i].Name.FullName = []asn1.RawValue{uriName(u)}
		}
		if err := add(oidExtCRLDistribution, false, dps); err != nil {
			return nil, err
		}
	}
	return append(exts, tmpl.ExtraExtensions...), nil
}

func uriName(u string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)}
}

func ia5(s string) error {
	for _, r := range s {
		if r > unicode.MaxASCII {
			return fmt.Errorf("%w: %q cannot be encoded as an IA5String", ErrBadRequest, s)
		}
	}
	return nil
}

func reverseBits(b byte) byte {
	var r byte
	for i := 0; i < 8; i++ {
		r = r<<1 | b&1
		b >>= 1
	}
	return r
}

// bitLength is the length of a BIT STRING without its trailing zero bits.
func bitLength(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			for j := 0; j < 8; j++ {
				if b[i]>>j&1 == 1 {
					return i*8 + 8 - j
				}
			}
		}
	}
	return 0
}
